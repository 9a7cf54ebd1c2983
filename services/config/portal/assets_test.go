package portal

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

func TestAssetsHashedAndCompressed(t *testing.T) {
	assets, err := loadAssets()
	if err != nil {
		t.Fatal(err)
	}
	for name := range assetTypes {
		a := assets[name]
		if a == nil || assets[a.hashed] != a {
			t.Fatalf("asset %s is not under its plain and its hashed name: %+v", name, a)
		}
		if !regexp.MustCompile(`^[a-z]+\.[0-9a-f]{10}\.[a-z]+$`).MatchString(a.hashed) {
			t.Errorf("hashed name of %s = %q, want name.<10 hex>.ext", name, a.hashed)
		}
		for _, tc := range []struct {
			path, acceptEncoding, wantEncoding, wantCache string
		}{
			{a.hashed, "gzip, br", "gzip", "public, max-age=31536000, immutable"},
			{a.hashed, "", "", "public, max-age=31536000, immutable"},
			{a.hashed, "gzip;q=0", "", "public, max-age=31536000, immutable"},
			{name, "gzip", "gzip", "no-cache"},
		} {
			if a.gz == nil {
				tc.wantEncoding = "" // too small to gain from gzip
			}
			r := httptest.NewRequest(http.MethodGet, "/portal/static/"+tc.path, nil)
			if tc.acceptEncoding != "" {
				r.Header.Set("Accept-Encoding", tc.acceptEncoding)
			}
			w := httptest.NewRecorder()
			serveAsset(w, r, a, tc.path == a.hashed)
			got := w.Body.Bytes()
			if enc := w.Header().Get("Content-Encoding"); enc != tc.wantEncoding {
				t.Errorf("%s with Accept-Encoding %q: Content-Encoding %q, want %q", tc.path, tc.acceptEncoding, enc, tc.wantEncoding)
			}
			if tc.wantEncoding == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(got))
				if err != nil {
					t.Fatalf("%s: %v", tc.path, err)
				}
				if got, err = io.ReadAll(zr); err != nil {
					t.Fatalf("%s: %v", tc.path, err)
				}
				if len(a.gz) >= len(a.data) {
					t.Errorf("%s: gzip is %d bytes, the file %d", tc.path, len(a.gz), len(a.data))
				}
			}
			if !bytes.Equal(got, a.data) {
				t.Errorf("%s with Accept-Encoding %q: body differs from the file (%d vs %d bytes)", tc.path, tc.acceptEncoding, len(got), len(a.data))
			}
			if cc := w.Header().Get("Cache-Control"); cc != tc.wantCache {
				t.Errorf("%s: Cache-Control %q, want %q", tc.path, cc, tc.wantCache)
			}
			if w.Header().Get("Vary") != "Accept-Encoding" || w.Header().Get("Content-Type") != assetTypes[name] {
				t.Errorf("%s: Vary %q, Content-Type %q", tc.path, w.Header().Get("Vary"), w.Header().Get("Content-Type"))
			}
		}
		r := httptest.NewRequest(http.MethodGet, "/portal/static/"+a.hashed, nil)
		r.Header.Set("If-None-Match", a.etag)
		w := httptest.NewRecorder()
		serveAsset(w, r, a, true)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("%s with its ETag: status %d, %d bytes; want 304, none", name, w.Code, w.Body.Len())
		}
	}
	if assets["app.js"].gz == nil {
		t.Errorf("app.js is not gzipped")
	}
}
