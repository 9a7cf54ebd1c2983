// Package listen is the client of `pulsehooks listen`: it makes sure the
// tenant has a relay endpoint, holds a WebSocket to the config service that
// receives the endpoint's deliveries, forwards each to a local URL, and
// sends the local server's answer back as the attempt's result. It
// reconnects with backoff when the connection drops.
package listen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/pulsehooks/pulsehooks/services/config/relay"
)

// Defaults of Config.
const (
	DefaultURL        = "http://localhost:8080"
	DefaultName       = "default"
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	maxConcurrent     = 32
	// idleTimeout ends a connection that has carried nothing, not even the
	// service's pings (every 20 s), for this long.
	idleTimeout = 50 * time.Second
)

// Config configures a listener.
type Config struct {
	// URL is the config service's public base URL; default DefaultURL.
	URL string
	// APIKey is the tenant's API key; required.
	APIKey string
	// ForwardTo is the local URL every delivery is sent to; required.
	ForwardTo string
	// Name tells this developer's relay endpoints apart: the endpoint is
	// found again by it (default DefaultName).
	Name string
	// EventTypes is the endpoint's filter; nil keeps an existing
	// endpoint's, empty means every type for a new one.
	EventTypes []string
	// Out receives one line per event (connected, each request, errors).
	Out io.Writer
	// HTTPClient makes the API calls and the WebSocket connection; default
	// a client with a 30 s timeout for API calls.
	HTTPClient *http.Client
	// LocalClient sends requests to ForwardTo; default a plain client.
	LocalClient *http.Client
	// MinBackoff and MaxBackoff bound the wait before a reconnect.
	MinBackoff, MaxBackoff time.Duration
}

// Endpoint is the relay endpoint, as the config service describes it.
type Endpoint struct {
	ID         string   `json:"id"`
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"`
	Enabled    bool     `json:"enabled"`
}

// Ensured is the answer of POST /relay/v1/endpoints.
type Ensured struct {
	Endpoint   Endpoint `json:"endpoint"`
	Created    bool     `json:"created"`
	SecretHint string   `json:"secret_hint"`
	ListenPath string   `json:"listen_path"`
}

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("--url %q must be the http(s) base URL of the config service", c.URL)
	}
	if c.APIKey == "" {
		return c, errors.New("an API key is required (--api-key or PULSEHOOKS_API_KEY)")
	}
	if u, err := url.Parse(c.ForwardTo); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("--forward-to %q must be an http(s) URL such as http://localhost:3000/hook", c.ForwardTo)
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.LocalClient == nil {
		c.LocalClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	return c, nil
}

// errFatal marks errors a reconnect cannot cure (bad key, endpoint gone).
var errFatal = errors.New("not retried")

// Run ensures the relay endpoint, prints it, and relays deliveries until ctx
// ends (then it returns nil) or the service refuses the key or the
// endpoint.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	ens, err := EnsureEndpoint(ctx, cfg)
	if err != nil {
		return err
	}
	verb := "using"
	if ens.Created {
		verb = "created"
	}
	filter := "all event types"
	if len(ens.Endpoint.EventTypes) > 0 {
		filter = strings.Join(ens.Endpoint.EventTypes, ",")
	}
	c := &client{cfg: cfg, endpointID: ens.Endpoint.ID, listenURL: wsURL(cfg.URL + ens.ListenPath)}
	c.printf("pulsehooks listen: %s relay endpoint %s (%s)\n", verb, ens.Endpoint.ID, filter)
	c.printf("  deliveries to %s are forwarded to %s\n", ens.Endpoint.URL, cfg.ForwardTo)
	c.printf("  signing secret %s (full: GET %s/v1/endpoints/%s/secret with your API key)\n", ens.SecretHint, cfg.URL, ens.Endpoint.ID)
	return c.run(ctx)
}

// EnsureEndpoint creates the tenant's relay endpoint named cfg.Name, or
// finds it again (enabling it, and setting its filter when
// cfg.EventTypes is not nil).
func EnsureEndpoint(ctx context.Context, cfg Config) (Ensured, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Ensured{}, err
	}
	body, _ := json.Marshal(map[string]any{"name": cfg.Name, "event_types": cfg.EventTypes})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+"/relay/v1/endpoints", bytes.NewReader(body))
	if err != nil {
		return Ensured{}, fmt.Errorf("relay endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", cfg.APIKey)
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return Ensured{}, fmt.Errorf("relay endpoint: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return Ensured{}, fmt.Errorf("relay endpoint: %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	var ens Ensured
	if err := json.Unmarshal(data, &ens); err != nil || ens.Endpoint.ID == "" || ens.ListenPath == "" {
		return Ensured{}, fmt.Errorf("relay endpoint: unexpected answer %q", data)
	}
	return ens, nil
}

func wsURL(u string) string {
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + rest
	}
	return "ws://" + strings.TrimPrefix(u, "http://")
}

type client struct {
	cfg        Config
	endpointID string
	listenURL  string
	outMu      sync.Mutex
}

func (c *client) printf(format string, args ...any) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	_, _ = fmt.Fprintf(c.cfg.Out, format, args...)
}

// run connects, serves, and reconnects with exponential backoff and jitter
// until ctx ends.
func (c *client) run(ctx context.Context) error {
	backoff := c.cfg.MinBackoff
	for {
		connected, err := c.session(ctx)
		if ctx.Err() != nil {
			c.printf("pulsehooks listen: stopped\n")
			return nil
		}
		if errors.Is(err, errFatal) {
			return err
		}
		if connected {
			backoff = c.cfg.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		c.printf("%s  connection lost (%v); reconnecting in %v\n", stamp(), err, wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			c.printf("pulsehooks listen: stopped\n")
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// session holds one connection until it ends; connected says whether it got
// as far as the service's hello.
func (c *client) session(ctx context.Context) (connected bool, err error) {
	// The service pings every 20 s; a connection silent for idleTimeout is
	// dead (a half-open TCP connection would otherwise wait for the kernel).
	var lastSeen atomic.Int64
	lastSeen.Store(time.Now().UnixNano())
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, resp, err := websocket.Dial(dctx, c.listenURL, &websocket.DialOptions{
		HTTPClient: c.cfg.HTTPClient,
		HTTPHeader: http.Header{"X-Api-Key": {c.cfg.APIKey}},
		OnPingReceived: func(context.Context, []byte) bool {
			lastSeen.Store(time.Now().UnixNano())
			return true
		},
	})
	cancel()
	if err != nil {
		if resp != nil {
			switch resp.StatusCode {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict:
				return false, fmt.Errorf("%w: the config service refused to attach: %s", errFatal, resp.Status)
			}
		}
		return false, err
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(2 * relay.MaxBodyBytes)
	_, data, err := conn.Read(ctx)
	if err != nil {
		return false, err
	}
	var hello relay.Frame
	if json.Unmarshal(data, &hello) != nil || hello.Type != relay.FrameHello {
		return false, fmt.Errorf("unexpected first frame %q", data)
	}
	c.printf("%s  connected, waiting for deliveries to %s\n", stamp(), hello.EndpointID)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		t := time.NewTicker(idleTimeout / 10)
		defer t.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-t.C:
				if time.Since(time.Unix(0, lastSeen.Load())) > idleTimeout {
					_ = conn.CloseNow()
					return
				}
			}
		}
	}()
	slots := make(chan struct{}, maxConcurrent)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return true, err
		}
		lastSeen.Store(time.Now().UnixNano())
		var req relay.Frame
		if err := json.Unmarshal(data, &req); err != nil || req.Type != relay.FrameRequest {
			continue
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			resp := c.forward(ctx, req)
			out, _ := json.Marshal(resp)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_ = conn.Write(wctx, websocket.MessageText, out) // a lost answer times out on the service side
		}()
	}
}

// forward sends one request to the local server and prints a line for it.
func (c *client) forward(ctx context.Context, req relay.Frame) relay.Frame {
	start := time.Now()
	resp := c.do(ctx, req)
	var event struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(req.Body, &event)
	if event.Type == "" {
		event.Type = "-"
	}
	answer := fmt.Sprint(resp.Status)
	if resp.Error != "" {
		answer = "error: " + resp.Error
	}
	c.printf("%s  %-24s %s  -> %s  %.1fms\n", stamp(), event.Type, req.Headers.Get("webhook-id"), answer, float64(time.Since(start).Microseconds())/1000)
	return resp
}

func (c *client) do(ctx context.Context, req relay.Frame) relay.Frame {
	resp := relay.Frame{Type: relay.FrameResponse, ID: req.ID}
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := req.Method
	if method == "" {
		method = http.MethodPost
	}
	hreq, err := http.NewRequestWithContext(ctx, method, c.cfg.ForwardTo, bytes.NewReader(req.Body))
	if err != nil {
		resp.Error = err.Error()
		return resp
	}
	hreq.Header = relay.CleanHeaders(req.Headers)
	hres, err := c.cfg.LocalClient.Do(hreq)
	if err != nil {
		resp.Error = err.Error()
		resp.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		return resp
	}
	defer func() { _ = hres.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(hres.Body, relay.MaxBodyBytes))
	if err != nil {
		resp.Error = "read the answer: " + err.Error()
		return resp
	}
	resp.Status, resp.Headers, resp.Body = hres.StatusCode, relay.CleanHeaders(hres.Header), body
	return resp
}

func stamp() string { return time.Now().Format("15:04:05.000") }
