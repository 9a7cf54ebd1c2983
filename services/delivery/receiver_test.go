package delivery

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
	user   string
	pass   string
	auth   bool
}

// receiver is an httptest endpoint that records requests and answers with
// respond (200 "ok" when nil).
type receiver struct {
	srv      *httptest.Server
	requests chan request
	respond  func(w http.ResponseWriter, r *http.Request, n int)

	mu sync.Mutex
	n  int
}

func newReceiver(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	t.Helper()
	rc := &receiver{requests: make(chan request, 100), respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		user, pass, ok := r.BasicAuth()
		rc.mu.Lock()
		rc.n++
		n := rc.n
		rc.mu.Unlock()
		rc.requests <- request{header: r.Header.Clone(), body: body, user: user, pass: pass, auth: ok}
		if rc.respond != nil {
			rc.respond(w, r, n)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// count returns how many requests arrived.
func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n
}

// next waits for the next request.
func (rc *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-rc.requests:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("no request at %s within %v", rc.srv.URL, waitTimeout)
		return request{}
	}
}
