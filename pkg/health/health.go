// Package health serves the liveness (/healthz) and readiness (/readyz) probes
// of the services that have no HTTP server of their own, and their metrics
// (/metrics) when given a handler for them.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// shutdownTimeout bounds the shutdown of the probe listener.
const shutdownTimeout = 5 * time.Second

// Server answers liveness (/healthz) and readiness (/readyz) probes.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Option adds a route to the probe listener.
type Option func(*http.ServeMux)

// WithMetrics serves h at GET /metrics; a nil h adds nothing (metrics off).
func WithMetrics(h http.Handler) Option {
	return func(mux *http.ServeMux) {
		if h != nil {
			mux.Handle("GET /metrics", h)
		}
	}
}

// Listen binds addr; /readyz answers 200 while ready returns true and 503
// otherwise, /healthz answers 200 while the process serves.
func Listen(addr string, ready func() bool, opts ...Option) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	for _, o := range opts {
		o(mux)
	}
	return &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers probes until ctx ends, then shuts the listener down.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("health listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down health listener: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health listener: %w", err)
	}
	return nil
}

// Run runs run beside a probe listener on addr whose readiness is ready, or
// run alone if addr is empty. The first of the two to fail cancels the
// other's context; Run returns once both have returned, with the first error.
func Run(ctx context.Context, addr string, ready func() bool, run func(context.Context) error, opts ...Option) error {
	if addr == "" {
		return run(ctx)
	}
	s, err := Listen(addr, ready, opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- s.Serve(ctx) }()
	go func() { errc <- run(ctx) }()
	var first error
	for range 2 {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// Service is what RunStarting runs: ready once it serves, and serving until
// its context ends.
type Service interface {
	Ready() bool
	Run(ctx context.Context) error
}

// RunStarting is Run for a service that takes a while to build (its New
// waits for JetStream, say): the probes answer from the start, not ready
// until start has returned the service and it reports ready. A start that
// fails because ctx ended returns nil (stopped while starting).
func RunStarting[S Service](ctx context.Context, addr string, start func(context.Context) (S, error), opts ...Option) error {
	var (
		mu      sync.Mutex
		started Service
	)
	ready := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return started != nil && started.Ready()
	}
	return Run(ctx, addr, ready, func(ctx context.Context) error {
		svc, err := start(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		started = svc
		mu.Unlock()
		return svc.Run(ctx)
	}, opts...)
}
