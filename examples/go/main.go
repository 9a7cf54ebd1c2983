// Command receiver is an example webhook receiver for pulsehooks in Go with
// net/http and pkg/signature: it verifies each delivery's Standard Webhooks
// signature (and its 5-minute timestamp window), answers 204 at once,
// ignores a webhook-id it has already seen, and processes events on a worker
// goroutine. It prints "verified <type> <webhook-id>" for each new event.
//
//	WEBHOOK_SECRET=whsec_… PORT=8000 go run .
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
)

// maxBody is the largest request body read.
const maxBody = 1 << 20

// event is the part of a webhook body this receiver reads.
type event struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// job is an event to process, with its webhook-id.
type job struct {
	id string
	ev event
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv("WEBHOOK_SECRET"), envOr("PORT", "8000"), os.Stdout)
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, secret, port string, out io.Writer) error {
	v, err := signature.NewVerifier(secret)
	if err != nil {
		return fmt.Errorf("WEBHOOK_SECRET: %w", err)
	}
	queue := make(chan job, 1024)
	h := &handler{verifier: v, queue: queue, seen: map[string]time.Time{}}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { work(queue, out) })
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	_, _ = fmt.Fprintf(out, "listening on http://%s/webhook\n", ln.Addr())
	err = srv.Serve(ln)
	close(queue)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// handler verifies, deduplicates and queues deliveries.
type handler struct {
	verifier *signature.Verifier
	queue    chan<- job

	mu   sync.Mutex
	seen map[string]time.Time // webhook-id → when first seen
}

// ServeHTTP answers at once: 204 for a verified delivery (new or repeated),
// 400 for a bad body, 401 for a bad signature.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/webhook" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	// Verify the raw bytes, before any parsing.
	if err := h.verifier.Verify(r.Header, body); err != nil {
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	id := r.Header.Get("webhook-id")
	if h.firstTime(id) {
		h.queue <- job{id: id, ev: ev}
	}
	w.WriteHeader(http.StatusNoContent)
}

// firstTime records id and reports whether it was new. Ids are forgotten
// after an hour (retries arrive well within it); a real receiver keeps them
// in its database, in the same transaction as the work.
func (h *handler) firstTime(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for k, at := range h.seen {
		if now.Sub(at) > time.Hour {
			delete(h.seen, k)
		}
	}
	if _, ok := h.seen[id]; ok {
		return false
	}
	h.seen[id] = now
	return true
}

// work processes queued events; here it prints them.
func work(queue <-chan job, out io.Writer) {
	for j := range queue {
		_, _ = fmt.Fprintf(out, "verified %s %s %s\n", j.ev.Type, j.id, j.ev.Data)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
