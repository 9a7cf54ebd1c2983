// Package receiver is the benchmark's webhook receiver: it verifies the
// Standard Webhooks signature of every request with pkg/signature, records
// the webhook-id, endpoint and receive time of each, and answers as each
// endpoint is told to — at once, slowly, with a given status, or never.
//
// Webhooks arrive at /ep/<name>; the behaviour comes from the query string
// (mode=ok, mode=slow&delay=200ms, mode=status&code=500, mode=hang) unless
// the control API has set one for the endpoint. The control API lives under
// /_ctl/ on the same listeners:
//
//	POST /_ctl/secrets   {"<name>":"whsec_…",…}  secrets to verify with (added or replaced)
//	POST /_ctl/modes     {"<name>":"mode=status&code=500",…}  behaviour overrides ("" removes one)
//	GET  /_ctl/stats     counters as JSON
//	GET  /_ctl/receipts  every receipt since the last reset, one per line (records.WriteReceipt)
//	GET  /_ctl/rejected  up to 100 rejected requests with the reason
//	POST /_ctl/reset     forget the receipts and zero the counters
//	POST /_ctl/release   abort the requests hanging now (their connections are reset)
package receiver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/records"
	"github.com/pulsehooks/pulsehooks/pkg/signature"
)

// maxBody bounds a webhook body.
const maxBody = 1 << 20

// maxRejected bounds the rejected requests kept for inspection.
const maxRejected = 100

// Stats are the receiver's counters since the last reset.
type Stats struct {
	// Requests is every webhook request that reached an endpoint path.
	Requests int64 `json:"requests"`
	// OK counts verified requests answered with a 2xx status.
	OK int64 `json:"ok"`
	// Failed counts verified requests answered otherwise, or not at all.
	Failed int64 `json:"failed"`
	// Rejected counts requests refused before recording: bad or missing
	// signature, unknown endpoint, unreadable body.
	Rejected int64 `json:"rejected"`
	// InFlight is the number of requests being handled now.
	InFlight int64 `json:"in_flight"`
	// Receipts is the number of receipts recorded.
	Receipts int `json:"receipts"`
}

// Rejection is one refused request.
type Rejection struct {
	Endpoint string `json:"endpoint"`
	ID       string `json:"id"`
	Reason   string `json:"reason"`
}

// behaviour is how an endpoint answers.
type behaviour struct {
	mode  string // ok, slow, status, hang
	delay time.Duration
	code  int
}

// Server is the receiver. Its Handler is safe for concurrent use.
type Server struct {
	// stop ends hanging requests when the receiver shuts down.
	stop <-chan struct{}

	mu        sync.RWMutex
	release   chan struct{} // closed by /_ctl/release
	verifiers map[string]*signature.Verifier
	names     map[string]string // interned endpoint names
	modes     map[string]behaviour

	recMu    sync.Mutex
	receipts []records.Receipt
	rejected []Rejection

	requests, ok, failed, rejectedN, inFlight atomic.Int64
}

// New returns a receiver; requests that hang return when stop is closed.
func New(stop <-chan struct{}) *Server {
	return &Server{
		stop:      stop,
		release:   make(chan struct{}),
		verifiers: map[string]*signature.Verifier{},
		names:     map[string]string{},
		modes:     map[string]behaviour{},
	}
}

// Handler serves the webhook and control paths.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ep/{name}", s.webhook)
	mux.HandleFunc("POST /_ctl/secrets", s.setSecrets)
	mux.HandleFunc("POST /_ctl/modes", s.setModes)
	mux.HandleFunc("GET /_ctl/stats", s.stats)
	mux.HandleFunc("GET /_ctl/receipts", s.dumpReceipts)
	mux.HandleFunc("GET /_ctl/rejected", s.dumpRejected)
	mux.HandleFunc("POST /_ctl/reset", s.reset)
	mux.HandleFunc("POST /_ctl/release", s.releaseHanging)
	return mux
}

// SetSecret makes secret the one name's signatures are verified with.
func (s *Server) SetSecret(name, secret string) error {
	v, err := signature.NewVerifier(secret)
	if err != nil {
		return fmt.Errorf("secret of %s: %w", name, err)
	}
	s.mu.Lock()
	s.verifiers[name] = v
	s.names[name] = name
	s.mu.Unlock()
	return nil
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.recMu.Lock()
	n := len(s.receipts)
	s.recMu.Unlock()
	return Stats{
		Requests: s.requests.Load(), OK: s.ok.Load(), Failed: s.failed.Load(),
		Rejected: s.rejectedN.Load(), InFlight: s.inFlight.Load(), Receipts: n,
	}
}

// Receipts returns a copy of the receipts since the last reset.
func (s *Server) Receipts() []records.Receipt {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return append([]records.Receipt(nil), s.receipts...)
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	name := r.PathValue("name")
	id := r.Header.Get(signature.HeaderID)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.reject(w, name, id, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	at := time.Now().UnixNano()
	s.mu.RLock()
	v := s.verifiers[name]
	interned := s.names[name]
	b, override := s.modes[name]
	release := s.release
	s.mu.RUnlock()
	if v == nil {
		s.reject(w, name, id, http.StatusNotFound, "no secret for this endpoint")
		return
	}
	if err := v.Verify(r.Header, body); err != nil {
		s.reject(w, name, id, http.StatusUnauthorized, "signature: "+err.Error())
		return
	}
	if !override {
		if b, err = parseBehaviour(r.URL.RawQuery); err != nil {
			s.reject(w, name, id, http.StatusBadRequest, err.Error())
			return
		}
	}
	status := http.StatusOK
	switch b.mode {
	case "status":
		status = b.code
	case "hang":
		status = 0
	}
	s.recMu.Lock()
	s.receipts = append(s.receipts, records.Receipt{ID: id, Endpoint: interned, At: at, Status: status})
	s.recMu.Unlock()
	switch b.mode {
	case "slow":
		t := time.NewTimer(b.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		case <-s.stop:
			t.Stop()
		}
	case "hang":
		s.failed.Add(1)
		select {
		case <-r.Context().Done():
		case <-s.stop:
		case <-release:
		}
		// Never answer: returning normally would send 200.
		panic(http.ErrAbortHandler)
	}
	if status >= 200 && status < 300 {
		s.ok.Add(1)
	} else {
		s.failed.Add(1)
	}
	w.WriteHeader(status)
}

func (s *Server) reject(w http.ResponseWriter, name, id string, status int, reason string) {
	s.rejectedN.Add(1)
	s.recMu.Lock()
	if len(s.rejected) < maxRejected {
		s.rejected = append(s.rejected, Rejection{Endpoint: name, ID: id, Reason: reason})
	}
	s.recMu.Unlock()
	http.Error(w, reason, status)
}

// parseBehaviour reads mode, delay and code from a query string.
func parseBehaviour(rawQuery string) (behaviour, error) {
	if rawQuery == "" {
		return behaviour{mode: "ok"}, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return behaviour{}, fmt.Errorf("query: %w", err)
	}
	b := behaviour{mode: q.Get("mode")}
	switch b.mode {
	case "", "ok":
		b.mode = "ok"
	case "slow":
		if b.delay, err = time.ParseDuration(q.Get("delay")); err != nil || b.delay < 0 {
			return behaviour{}, fmt.Errorf("mode=slow needs delay=<duration>, got %q", q.Get("delay"))
		}
	case "status":
		if b.code, err = strconv.Atoi(q.Get("code")); err != nil || b.code < 200 || b.code > 599 {
			return behaviour{}, fmt.Errorf("mode=status needs code=200…599, got %q", q.Get("code"))
		}
	case "hang":
	default:
		return behaviour{}, fmt.Errorf("unknown mode %q (ok, slow, status, hang)", b.mode)
	}
	return b, nil
}

func (s *Server) setSecrets(w http.ResponseWriter, r *http.Request) {
	var in map[string]string
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	for name, secret := range in {
		if err := s.SetSecret(name, secret); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setModes(w http.ResponseWriter, r *http.Request) {
	var in map[string]string
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	parsed := map[string]*behaviour{}
	for name, q := range in {
		if q == "" {
			parsed[name] = nil
			continue
		}
		b, err := parseBehaviour(q)
		if err != nil {
			http.Error(w, name+": "+err.Error(), http.StatusBadRequest)
			return
		}
		parsed[name] = &b
	}
	s.mu.Lock()
	for name, b := range parsed {
		if b == nil {
			delete(s.modes, name)
		} else {
			s.modes[name] = *b
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) stats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("content-type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
}

func (s *Server) dumpReceipts(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("content-type", "text/tab-separated-values")
	bw := bufio.NewWriterSize(w, 256<<10)
	for _, rc := range s.Receipts() {
		if err := records.WriteReceipt(bw, rc); err != nil {
			return
		}
	}
	_ = bw.Flush()
}

func (s *Server) dumpRejected(w http.ResponseWriter, _ *http.Request) {
	s.recMu.Lock()
	out := append([]Rejection(nil), s.rejected...)
	s.recMu.Unlock()
	w.Header().Set("content-type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) releaseHanging(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	close(s.release)
	s.release = make(chan struct{})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) reset(w http.ResponseWriter, _ *http.Request) {
	s.recMu.Lock()
	s.receipts = nil
	s.rejected = nil
	s.recMu.Unlock()
	s.requests.Store(0)
	s.ok.Store(0)
	s.failed.Store(0)
	s.rejectedN.Store(0)
	w.WriteHeader(http.StatusNoContent)
}

// Client talks to a receiver's control API.
type Client struct {
	// Base is the receiver's base URL, such as http://127.0.0.1:9999.
	Base string
	HTTP *http.Client
}

func (c Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// do sends a control request and returns the response body.
func (c Client) do(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("receiver %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("receiver %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("receiver %s %s: %s: %s", method, path, resp.Status, out)
	}
	return out, nil
}

// SetSecrets registers endpoint secrets.
func (c Client) SetSecrets(ctx context.Context, secrets map[string]string) error {
	_, err := c.do(ctx, http.MethodPost, "/_ctl/secrets", secrets)
	return err
}

// SetModes sets behaviour overrides ("" removes one).
func (c Client) SetModes(ctx context.Context, modes map[string]string) error {
	_, err := c.do(ctx, http.MethodPost, "/_ctl/modes", modes)
	return err
}

// Release aborts the requests hanging now.
func (c Client) Release(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/_ctl/release", nil)
	return err
}

// Reset forgets the receipts and zeroes the counters.
func (c Client) Reset(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/_ctl/reset", nil)
	return err
}

// Stats reads the counters.
func (c Client) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	b, err := c.do(ctx, http.MethodGet, "/_ctl/stats", nil)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// Receipts reads every receipt since the last reset.
func (c Client) Receipts(ctx context.Context) ([]records.Receipt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/_ctl/receipts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("receiver receipts: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("receiver receipts: %s", resp.Status)
	}
	return records.ReadReceipts(resp.Body)
}

// Rejected reads the rejected requests kept.
func (c Client) Rejected(ctx context.Context) ([]Rejection, error) {
	var out []Rejection
	b, err := c.do(ctx, http.MethodGet, "/_ctl/rejected", nil)
	if err != nil {
		return nil, err
	}
	return out, json.Unmarshal(b, &out)
}
