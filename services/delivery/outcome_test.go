package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

func TestClassifyStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   eventv1.Outcome
	}{
		{200, eventv1.Outcome_OUTCOME_SUCCESS},
		{202, eventv1.Outcome_OUTCOME_SUCCESS},
		{299, eventv1.Outcome_OUTCOME_SUCCESS},
		{301, eventv1.Outcome_OUTCOME_HTTP_STATUS},
		{302, eventv1.Outcome_OUTCOME_HTTP_STATUS},
		{404, eventv1.Outcome_OUTCOME_HTTP_STATUS},
		{410, eventv1.Outcome_OUTCOME_HTTP_STATUS},
		{429, eventv1.Outcome_OUTCOME_HTTP_STATUS},
		{500, eventv1.Outcome_OUTCOME_HTTP_STATUS},
	} {
		if got := classify(nil, tc.status); got != tc.want {
			t.Errorf("classify(nil, %d) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

// postErr POSTs to rawURL with a client built like the service's, allowing
// loopback unless blockLoopback, and returns the error.
func postErr(t *testing.T, rawURL string, timeout time.Duration, blockLoopback bool) error {
	t.Helper()
	cfg := Config{LaneConcurrency: 1, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	if blockLoopback {
		cfg.AllowNetworks = nil
	}
	client := newHTTPClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("POST %s succeeded with %s, want an error", rawURL, resp.Status)
	}
	return err
}

func TestClassifyRealErrors(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(plain.Close)
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	closed := closedPortURL(t)
	reset := resettingServerURL(t)

	for _, tc := range []struct {
		name  string
		err   func(t *testing.T) error
		want  eventv1.Outcome
		check func(error) bool
	}{
		{"loopback without allowlist", func(t *testing.T) error { return postErr(t, plain.URL, 5*time.Second, true) }, eventv1.Outcome_OUTCOME_BLOCKED, nil},
		{"connection refused", func(t *testing.T) error { return postErr(t, closed, 5*time.Second, false) }, eventv1.Outcome_OUTCOME_CONNECTION,
			func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		{"connection reset", func(t *testing.T) error { return postErr(t, reset, 5*time.Second, false) }, eventv1.Outcome_OUTCOME_CONNECTION, nil},
		{"response too slow", func(t *testing.T) error { return postErr(t, slow.URL, 100*time.Millisecond, false) }, eventv1.Outcome_OUTCOME_TIMEOUT, nil},
		{"untrusted certificate", func(t *testing.T) error { return postErr(t, untrusted.URL, 5*time.Second, false) }, eventv1.Outcome_OUTCOME_TLS, nil},
		{"https to a plain server", func(t *testing.T) error {
			return postErr(t, strings.Replace(plain.URL, "http://", "https://", 1), 5*time.Second, false)
		}, eventv1.Outcome_OUTCOME_TLS, nil},
		{"https to a server speaking neither", func(t *testing.T) error {
			return postErr(t, strings.Replace(garbageServerURL(t), "http://", "https://", 1), 5*time.Second, false)
		}, eventv1.Outcome_OUTCOME_TLS, func(err error) bool {
			var rh tls.RecordHeaderError
			return errors.As(err, &rh)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err(t)
			if got := classify(err, 0); got != tc.want {
				t.Errorf("classify(%v) = %v, want %v", err, got, tc.want)
			}
			if tc.check != nil && !tc.check(err) {
				t.Errorf("error %v is not the kind this row means to test", err)
			}
		})
	}
}

func TestClassifyWrappedErrors(t *testing.T) {
	wrap := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://hooks.example.com/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	for _, tc := range []struct {
		name string
		err  error
		want eventv1.Outcome
	}{
		{"host not found", wrap(&net.DNSError{Err: "no such host", Name: "hooks.example.com", IsNotFound: true}), eventv1.Outcome_OUTCOME_DNS},
		{"resolver failure", wrap(&net.DNSError{Err: "server misbehaving", Name: "hooks.example.com", IsTemporary: true}), eventv1.Outcome_OUTCOME_DNS},
		{"deadline during lookup", wrap(&net.DNSError{Err: "i/o timeout", Name: "hooks.example.com", IsTimeout: true, UnwrapErr: context.DeadlineExceeded}), eventv1.Outcome_OUTCOME_TIMEOUT},
		{"blocked after resolution", wrap(fmt.Errorf("%w: 10.0.0.1 is in the reserved range 10.0.0.0/8", ssrf.ErrBlocked)), eventv1.Outcome_OUTCOME_BLOCKED},
		{"connection reset", wrap(syscall.ECONNRESET), eventv1.Outcome_OUTCOME_CONNECTION},
		{"unexpected EOF", &url.Error{Op: "Post", URL: "https://hooks.example.com/", Err: errors.New("EOF")}, eventv1.Outcome_OUTCOME_CONNECTION},
		{"tls alert from server", &url.Error{Op: "Post", URL: "https://hooks.example.com/", Err: &net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}}, eventv1.Outcome_OUTCOME_TLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err, 0); got != tc.want {
				t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// closedPortURL returns the URL of a loopback port nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr + "/"
}

// garbageServerURL returns the URL of a server that answers every connection
// with bytes that are neither TLS nor HTTP.
func garbageServerURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("\x00\x01garbage garbage garbage\r\n"))
			_ = c.Close()
		}
	}()
	return "http://" + l.Addr().String() + "/"
}

// resettingServerURL returns the URL of a server that resets every
// connection once the request has arrived.
func resettingServerURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1024)
			_, _ = c.Read(buf)
			_ = c.(*net.TCPConn).SetLinger(0)
			_ = c.Close()
		}
	}()
	return "http://" + l.Addr().String() + "/"
}
