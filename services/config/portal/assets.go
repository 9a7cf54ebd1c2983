package portal

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"strings"
)

// assetTypes are the static files of the portal app, with their types.
var assetTypes = map[string]string{
	"portal.css":  "text/css; charset=utf-8",
	"app.js":      "text/javascript; charset=utf-8",
	"logs.js":     "text/javascript; charset=utf-8",
	"favicon.svg": "image/svg+xml",
}

// asset is one static file, read and compressed once at start. It is
// served under its plain name (revalidated on every use) and under its
// hashed name, such as app.3f2a9c1b0d.js, which pages link to and
// browsers keep for a year: a new build has new names.
type asset struct {
	ctype  string
	hashed string
	etag   string
	data   []byte
	gz     []byte // nil when gzip does not make it smaller
}

// loadAssets reads, hashes and gzips the assets; the map holds each under
// its plain and its hashed name.
func loadAssets() (map[string]*asset, error) {
	out := make(map[string]*asset, 2*len(assetTypes))
	for name, ct := range assetTypes {
		data, err := webFS.ReadFile(path.Join("web", name))
		if err != nil {
			return nil, fmt.Errorf("read portal asset %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:5])
		ext := path.Ext(name)
		a := &asset{ctype: ct, hashed: strings.TrimSuffix(name, ext) + "." + h + ext, etag: `"` + h + `"`, data: data}
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip portal asset %s: %w", name, err)
		}
		if _, err := zw.Write(data); err != nil {
			return nil, fmt.Errorf("gzip portal asset %s: %w", name, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip portal asset %s: %w", name, err)
		}
		if buf.Len() < len(data) {
			a.gz = buf.Bytes()
		}
		out[name] = a
		out[a.hashed] = a
	}
	return out, nil
}

// assetURL is the path, relative to /portal/, of an asset's hashed name;
// the templates call it as {{asset "app.js"}}.
func (p *Portal) assetURL(name string) (string, error) {
	a, ok := p.assets[name]
	if !ok {
		return "", fmt.Errorf("no portal asset %s", name)
	}
	return "static/" + a.hashed, nil
}

// serveAsset writes an asset, gzipped when the client accepts it; a hashed
// name is cacheable for a year, a plain name must be revalidated.
func serveAsset(w http.ResponseWriter, r *http.Request, a *asset, hashed bool) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	if hashed {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.data
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") || strings.TrimSpace(coding) == "*" {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
