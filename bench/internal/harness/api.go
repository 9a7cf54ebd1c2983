package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// api is a client of the config service's operator and tenant APIs.
type api struct {
	base       string
	adminToken string
	client     *http.Client
}

func newAPI(sys *system) *api {
	return &api{base: sys.configURL, adminToken: sys.adminToken, client: &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64},
	}}
}

// call sends a JSON request and decodes a JSON answer; a status other than
// want is an error. Refusals with 503 (store busy) are retried.
func (a *api) call(ctx context.Context, method, path string, headers map[string]string, in, out any, want int) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if in != nil {
			req.Header.Set("content-type", "application/json")
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := a.client.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		raw, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable && attempt < 10 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
			continue
		}
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, raw)
		}
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("%s %s: decode %q: %w", method, path, raw, err)
			}
		}
		return nil
	}
}

func (a *api) admin() map[string]string {
	return map[string]string{"authorization": "Bearer " + a.adminToken}
}

// defaultEndpointQuota is the config service's default endpoint quota per
// tenant (config.DefaultQuotaEndpoints).
const defaultEndpointQuota = 100

// createTenant creates a tenant and an API key for it, and returns the key.
// A tenant that gets more endpoints than the default quota is created with
// a quota of exactly that many (the fan-out scenario's 10,000).
func (a *api) createTenant(ctx context.Context, id string, endpoints int) (string, error) {
	body := map[string]any{"id": id, "name": "bench " + id}
	if endpoints > defaultEndpointQuota {
		body["quotas"] = map[string]int{"endpoints": endpoints}
	}
	if err := a.call(ctx, "POST", "/admin/v1/tenants", a.admin(), body, nil, http.StatusCreated); err != nil {
		return "", err
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := a.call(ctx, "POST", "/admin/v1/tenants/"+id+"/api-keys", a.admin(), map[string]string{"name": "bench"}, &key, http.StatusCreated); err != nil {
		return "", err
	}
	return key.Key, nil
}

// endpointSpec is one endpoint to create.
type endpointSpec struct {
	// Tenant and Name (the receiver path /ep/<name>).
	Tenant, Name string
	// URL is the full endpoint URL; Secret is set by the harness so the
	// receiver knows it without reading it back.
	URL, Secret string
	// EventTypes filters; empty subscribes to all.
	EventTypes []string
	// ID is filled in when created.
	ID string
}

// newSecret returns a fresh whsec_ secret of 32 random bytes.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// setup creates tenants (with one API key each) and endpoints with
// `workers` requests in flight, and reports progress to log every 10 s.
func (a *api) setup(ctx context.Context, tenants []string, eps []endpointSpec, workers int, logf func(string, ...any)) error {
	keys := make(map[string]string, len(tenants))
	var mu sync.Mutex
	var done atomic.Int64
	start := time.Now()
	stopProgress := make(chan struct{})
	defer close(stopProgress)
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				logf("  setup: %d of %d tenants and endpoints after %v", done.Load(), len(tenants)+len(eps), time.Since(start).Round(time.Second))
			}
		}
	}()
	perTenant := map[string]int{}
	for _, ep := range eps {
		perTenant[ep.Tenant]++
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, t := range tenants {
		g.Go(func() error {
			k, err := a.createTenant(gctx, t, perTenant[t])
			if err != nil {
				return err
			}
			mu.Lock()
			keys[t] = k
			mu.Unlock()
			done.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range eps {
		g.Go(func() error {
			ep := &eps[i]
			var out struct {
				ID string `json:"id"`
			}
			body := map[string]any{"url": ep.URL, "secret": ep.Secret, "description": ep.Name}
			if len(ep.EventTypes) > 0 {
				body["event_types"] = ep.EventTypes
			}
			if err := a.call(gctx, "POST", "/v1/endpoints", map[string]string{"x-api-key": keys[ep.Tenant]}, body, &out, http.StatusCreated); err != nil {
				return fmt.Errorf("endpoint %s: %w", ep.Name, err)
			}
			ep.ID = out.ID
			done.Add(1)
			return nil
		})
	}
	return g.Wait()
}
