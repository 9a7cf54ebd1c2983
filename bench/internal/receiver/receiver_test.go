package receiver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// post sends a webhook signed with sec to path and returns the status, or
// 0 when the request failed (the receiver aborted it).
func post(t *testing.T, base, path, id, sec string) int {
	t.Helper()
	body := `{"type":"job.completed","timestamp":"2026-01-01T00:00:00.000Z","data":{}}`
	key, err := signature.ParseSecret(sec)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set(signature.HeaderID, id)
	req.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(signature.HeaderSignature, signature.Sign(key, id, now, []byte(body)))
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverVerifiesRecordsAndAnswersAsTold(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	srv := New(stop)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	c := Client{Base: ts.URL}
	ctx := context.Background()
	if err := c.SetSecrets(ctx, map[string]string{"a": secret, "b": secret, "h": secret}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path, id, secret string
		want             int
	}{
		{"/ep/a", "msg_1", secret, 200},
		{"/ep/a?mode=slow&delay=10ms", "msg_2", secret, 200},
		{"/ep/b?mode=status&code=500", "msg_3", secret, 500},
		{"/ep/a", "msg_4", "whsec_" + strings.Repeat("A", 32), 401}, // wrong secret
		{"/ep/nobody", "msg_5", secret, 404},
		{"/ep/a?mode=bogus", "msg_6", secret, 400},
	} {
		if got := post(t, ts.URL, tc.path, tc.id, tc.secret); got != tc.want {
			t.Errorf("POST %s (%s) = %d, want %d", tc.path, tc.id, got, tc.want)
		}
	}
	// A mode override wins over the query string.
	if err := c.SetModes(ctx, map[string]string{"a": "mode=status&code=503"}); err != nil {
		t.Fatal(err)
	}
	if got := post(t, ts.URL, "/ep/a", "msg_7", secret); got != 503 {
		t.Errorf("with override: status %d, want 503", got)
	}
	// A hanging request is recorded, never answered, and released on demand.
	done := make(chan int)
	go func() { done <- post(t, ts.URL, "/ep/h?mode=hang", "msg_8", secret) }()
	deadlineWait(t, func() bool { st, _ := c.Stats(ctx); return st.InFlight == 1 })
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != 0 {
		t.Errorf("hanging request answered %d, want no answer", got)
	}

	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.OK != 2 || st.Failed != 3 || st.Rejected != 3 {
		t.Errorf("stats = %+v, want 2 ok, 3 failed (500, 503, hang), 3 rejected", st)
	}
	got, err := c.Receipts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"msg_1": 200, "msg_2": 200, "msg_3": 500, "msg_7": 503, "msg_8": 0}
	if len(got) != len(want) {
		t.Fatalf("receipts = %+v, want %v", got, want)
	}
	for _, r := range got {
		if s, ok := want[r.ID]; !ok || s != r.Status || r.At == 0 {
			t.Errorf("receipt %+v, want status %d", r, s)
		}
	}
	if err := c.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Stats(ctx); st.Receipts != 0 || st.OK != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

func deadlineWait(t *testing.T, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}
