package signature_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
)

// A receiver verifies each webhook before acting on it: read the body (with a
// limit), verify it against the headers, and answer 2xx quickly.
func ExampleVerifier() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	verifier, err := signature.NewVerifier(secret)
	if err != nil {
		log.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := verifier.Verify(r.Header, body); err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, signature.ErrMissingHeaders) {
				status = http.StatusBadRequest
			}
			http.Error(w, "invalid webhook", status)
			return
		}
		// Use webhook-id to ignore a webhook delivered twice.
		fmt.Printf("verified %s: %s\n", r.Header.Get(signature.HeaderID), body)
		w.WriteHeader(http.StatusNoContent)
	})

	// What a sender such as pulsehooks does.
	key, err := signature.ParseSecret(secret)
	if err != nil {
		log.Fatal(err)
	}
	body := `{"type":"job.completed","timestamp":"2024-01-01T00:00:00Z","data":{"job_id":"job_1"}}`
	now := time.Now()
	for _, sig := range []string{signature.Sign(key, "msg_1", now, []byte(body)), "v1,Zm9yZ2Vk"} {
		req := httptest.NewRequest(http.MethodPost, "/webhooks", strings.NewReader(body))
		req.Header.Set(signature.HeaderID, "msg_1")
		req.Header.Set(signature.HeaderTimestamp, fmt.Sprint(now.Unix()))
		req.Header.Set(signature.HeaderSignature, sig)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// verified msg_1: {"type":"job.completed","timestamp":"2024-01-01T00:00:00Z","data":{"job_id":"job_1"}}
	// 204
	// 401
}
