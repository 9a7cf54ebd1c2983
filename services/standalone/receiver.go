package standalone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
)

// ReceiverConfig configures the development receiver.
type ReceiverConfig struct {
	// Addr to listen on, such as 127.0.0.1:9999.
	Addr string
	// Secret verifies signatures when set ("whsec_…"); unset prints them unverified.
	Secret string
	// Status is the status code to answer with; default 200.
	Status int
}

// RunReceiver runs a webhook receiver that verifies each request's Standard
// Webhooks signature and prints what it received, until ctx ends. It is the
// other half of the README's five-minute tour.
func RunReceiver(ctx context.Context, cfg ReceiverConfig, out io.Writer) error {
	if cfg.Status == 0 {
		cfg.Status = http.StatusOK
	}
	var verifier *signature.Verifier
	if cfg.Secret != "" {
		v, err := signature.NewVerifier(cfg.Secret)
		if err != nil {
			return fmt.Errorf("receiver secret: %w", err)
		}
		verifier = v
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		verdict := "signature not checked (start with -secret whsec_… to verify)"
		if verifier != nil {
			if err := verifier.Verify(r.Header, body); err != nil {
				_, _ = fmt.Fprintf(out, "%s REJECTED %s: %v\n", time.Now().Format(time.TimeOnly), r.Header.Get("webhook-id"), err)
				http.Error(w, "invalid signature", http.StatusUnauthorized)
				return
			}
			verdict = "signature verified"
		}
		_, _ = fmt.Fprintf(out, "%s %s %s (%s)\n  %s\n", time.Now().Format(time.TimeOnly), r.Method, r.Header.Get("webhook-id"), verdict, body)
		w.WriteHeader(cfg.Status)
	})
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("receiver listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	_, _ = fmt.Fprintf(out, "receiver listening on http://%s/ (answers %d)\n", l.Addr(), cfg.Status)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("receiver: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("receiver shutdown: %w", err)
	}
	return nil
}
