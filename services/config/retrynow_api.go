package config

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/deliverycontrol"
)

// retryNowTimeout bounds the wait for a delivery worker's answer to a
// retry-now request.
const retryNowTimeout = 2 * time.Second

// retryNowView is the answer of POST /v1/endpoints/{id}/retry-now.
type retryNowView struct {
	// Queued is how many waiting deliveries were made due now.
	Queued int `json:"queued"`
}

// retryNowEndpoint handles POST /v1/endpoints/{id}/retry-now: every waiting
// delivery of the tenant's endpoint (retries and put-off deliveries in the
// delivery service's schedule) is made due now, and the endpoint is no
// longer treated as failing. The config service has no Redis: a delivery
// worker does it (pkg/deliverycontrol) and says how many it made due.
// Another tenant's endpoint is 404, a disabled one 409, no worker
// answering within retryNowTimeout 503.
func (s *Service) retryNowEndpoint(w http.ResponseWriter, r *http.Request, tenantID string) {
	var body struct{}
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, true); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	ep, err := s.tenantEndpoint(r, tenantID)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	if !ep.GetEnabled() {
		writeErr(w, r, s.log, &httpError{status: http.StatusConflict, code: "endpoint_disabled",
			message: "This endpoint is disabled, so its deliveries are not sent. Enable the endpoint, then retry now."})
		return
	}
	if s.nc == nil {
		writeErr(w, r, s.log, retryNowUnavailable("no delivery worker answered; try again"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), retryNowTimeout)
	defer cancel()
	queued, err := deliverycontrol.RetryNow(ctx, s.nc, tenantID, ep.GetId())
	var ce *deliverycontrol.Error
	switch {
	case errors.Is(err, deliverycontrol.ErrNoWorker):
		s.log.WarnContext(r.Context(), "retry now: no delivery worker answered", "tenant_id", tenantID, "endpoint_id", ep.GetId(), "err", err)
		writeErr(w, r, s.log, retryNowUnavailable("no delivery worker answered; try again"))
		return
	case errors.As(err, &ce):
		writeErr(w, r, s.log, retryNowRefused(ce))
		return
	case err != nil:
		writeErr(w, r, s.log, err)
		return
	}
	s.log.InfoContext(r.Context(), "retry now", "tenant_id", tenantID, "endpoint_id", ep.GetId(), "queued", queued)
	writeJSON(w, http.StatusOK, retryNowView{Queued: queued})
}

// retryNowRefused is the HTTP error for a delivery worker's refusal. The
// config store has been checked already, so a worker that does not know
// the endpoint, or still sees it disabled, has not caught up with a recent
// change yet.
func retryNowRefused(ce *deliverycontrol.Error) error {
	switch ce.Code {
	case deliverycontrol.CodeDisabled:
		return &httpError{status: http.StatusConflict, code: "endpoint_disabled",
			message: "The delivery workers still see this endpoint as disabled. If you just enabled it, retry now in a few seconds."}
	case deliverycontrol.CodeNotFound:
		return retryNowUnavailable("the delivery workers have not seen this endpoint yet; try again in a few seconds")
	default:
		return retryNowUnavailable(ce.Message)
	}
}

func retryNowUnavailable(message string) error {
	return &httpError{status: http.StatusServiceUnavailable, code: "unavailable", message: message}
}
