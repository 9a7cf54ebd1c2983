package ingest

import (
	"context"
	"net/http"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// readyCheckTimeout bounds the stream look-up of /readyz.
const readyCheckTimeout = 2 * time.Second

// healthReply is the body of /healthz and /readyz.
type healthReply struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// handleHealthz answers 200 while the process serves HTTP.
func (s *Service) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, healthReply{Status: "ok"})
}

// handleReadyz answers 200 once the configuration snapshot is loaded, the
// EVENTS stream and the idempotency bucket are ensured, the NATS queue
// subscription is in place and the EVENTS stream answers, and
// 503 before that and during shutdown.
func (s *Service) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if reason := s.notReady(r.Context()); reason != "" {
		writeJSON(w, http.StatusServiceUnavailable, healthReply{Status: "unavailable", Reason: reason})
		return
	}
	writeJSON(w, http.StatusOK, healthReply{Status: "ok"})
}

// notReady says why the service cannot take publishes, or "" when it can.
func (s *Service) notReady(ctx context.Context) string {
	if reason := s.notReadyHere(); reason != "" {
		return reason
	}
	ctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
	defer cancel()
	if _, err := s.js.Stream(ctx, streams.Events); err != nil {
		return "stream " + streams.Events + " unavailable: " + err.Error()
	}
	return ""
}

// notReadyHere is notReady without asking the server: shutting down, the
// configuration not loaded, the stream and bucket not ensured, or the
// queue subscription not in place.
func (s *Service) notReadyHere() string {
	if s.stopping.Load() {
		return "shutting down"
	}
	select {
	case <-s.view.Ready():
	default:
		return "configuration snapshot not loaded yet"
	}
	select {
	case <-s.prepared:
	default:
		return "stream " + streams.Events + " and bucket " + IdempotencyBucket + " not ensured yet"
	}
	if !s.serving.Load() {
		return "not subscribed to " + streams.IngestSubject + " yet"
	}
	return ""
}

// Ready reports whether the service takes publishes: what /readyz checks,
// without its round trip to the stream.
func (s *Service) Ready() bool { return s.notReadyHere() == "" }
