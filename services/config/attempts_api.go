package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
	"github.com/pulsehooks/pulsehooks/services/config/attemptlog"
	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

// Handlers of the attempt log: messages, attempts, delivery status, stats,
// resend and recover, behind requireAPIKey. Lists are newest first, with
// the opaque iterator of the attempt log.

// statsHours is the default window of endpoint statistics, and
// maxStatsHours the longest (7 days).
const (
	statsHours    = 24
	maxStatsHours = 7 * 24
)

// maxDeliveriesShown bounds the per-endpoint statuses of one message.
const maxDeliveriesShown = 1000

// messageView is a message in lists.
type messageView struct {
	ID        string `json:"id"`
	EventType string `json:"event_type"`
	// Timestamp is the event's time as its publisher gave it.
	Timestamp time.Time `json:"timestamp"`
	// CreatedAt is when pulsehooks accepted it; lists are ordered by it.
	CreatedAt time.Time `json:"created_at"`
}

// messageDetailView is one message with its payload and deliveries.
type messageDetailView struct {
	messageView
	// Payload is the exact JSON body sent to endpoints, null once the
	// EVENTS stream no longer holds it.
	Payload    json.RawMessage `json:"payload"`
	Deliveries []deliveryView  `json:"deliveries"`
}

// deliveryView is the status of a message's delivery to an endpoint.
type deliveryView struct {
	EndpointID string `json:"endpoint_id"`
	MessageID  string `json:"message_id"`
	EventType  string `json:"event_type"`
	// State is pending (queued, not attempted yet), put_off (moved to the
	// schedule without an attempt, due at next_attempt_at), retrying,
	// succeeded, failed (every attempt of the schedule failed) or dropped
	// (the endpoint was disabled or deleted).
	State string `json:"state"`
	// Reason says why, for a state decided without an attempt ("endpoint
	// failing", "lane full", "resent"…).
	Reason string `json:"reason,omitempty"`
	// UpdatedAt is when the state was decided.
	UpdatedAt      *time.Time `json:"updated_at"`
	Attempts       uint32     `json:"attempts"`
	LastAttemptID  string     `json:"last_attempt_id,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	LastOutcome    string     `json:"last_outcome,omitempty"`
	LastStatusCode int32      `json:"last_status_code,omitempty"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	// MessageCreatedAt orders an endpoint's deliveries.
	MessageCreatedAt time.Time `json:"message_created_at"`
}

// attemptView is an attempt in lists.
type attemptView struct {
	ID         string  `json:"id"`
	MessageID  string  `json:"message_id"`
	EndpointID string  `json:"endpoint_id"`
	EventType  string  `json:"event_type"`
	Attempt    uint32  `json:"attempt"`
	Outcome    string  `json:"outcome"`
	StatusCode int32   `json:"status_code"`
	DurationMS float64 `json:"duration_ms"`
	// Timestamp is when the attempt started; lists are ordered by it.
	Timestamp     time.Time  `json:"timestamp"`
	State         string     `json:"state"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// attemptDetailView is one attempt in full.
type attemptDetailView struct {
	attemptView
	URL             string       `json:"url"`
	Error           string       `json:"error,omitempty"`
	RequestHeaders  []headerView `json:"request_headers"`
	ResponseHeaders []headerView `json:"response_headers"`
	// ResponseBody is the first 4 KiB of the response body: text when it
	// is UTF-8, else base64 (ResponseBodyEncoding "base64").
	ResponseBody         string `json:"response_body"`
	ResponseBodyEncoding string `json:"response_body_encoding"`
	TraceID              string `json:"trace_id,omitempty"`
}

type headerView struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// statsView is an endpoint's attempts of the last 24 hours.
type statsView struct {
	EndpointID string          `json:"endpoint_id"`
	Success    uint64          `json:"success"`
	Failure    uint64          `json:"failure"`
	Hours      []hourStatsView `json:"hours"`
}

type hourStatsView struct {
	Hour    time.Time `json:"hour"`
	Success uint64    `json:"success"`
	Failure uint64    `json:"failure"`
}

// resendView answers a resend.
type resendView struct {
	ID         string `json:"id"`
	MessageID  string `json:"message_id"`
	EndpointID string `json:"endpoint_id"`
}

// recoverBody is the body of a recover request.
type recoverBody struct {
	Since *string `json:"since"`
	Until *string `json:"until"`
	// IncludeRetrying also sends deliveries whose latest attempt left them
	// retrying, not only failed (exhausted or dropped) ones.
	IncludeRetrying bool `json:"include_retrying"`
}

// recoverView answers a recover request.
type recoverView struct {
	ID string `json:"id"`
	// Count is how many deliveries the request queued again (recorded as
	// pending).
	Count int `json:"count"`
	// More is true when more than MaxRecover matched; NextSince starts a
	// request for the rest.
	More      bool       `json:"more"`
	NextSince *time.Time `json:"next_since,omitempty"`
}

func outcomeName(o eventv1.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
}

// parseOutcome reads an outcome filter: success, http_status, timeout,
// connection, dns, tls or blocked.
func parseOutcome(s string) (eventv1.Outcome, error) {
	v, ok := eventv1.Outcome_value["OUTCOME_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, invalid("outcome", "must be one of success, http_status, timeout, connection, dns, tls, blocked; got %q", s)
	}
	return eventv1.Outcome(v), nil
}

func stateName(st eventv1.DeliveryState) string {
	switch st {
	case eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED:
		return "succeeded"
	case eventv1.DeliveryState_DELIVERY_STATE_RETRYING:
		return "retrying"
	case eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED:
		return "failed"
	case eventv1.DeliveryState_DELIVERY_STATE_DROPPED:
		return "dropped"
	case eventv1.DeliveryState_DELIVERY_STATE_PENDING:
		return "pending"
	case eventv1.DeliveryState_DELIVERY_STATE_PUT_OFF:
		return "put_off"
	}
	return "unknown"
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func newMessageView(m attemptlog.Message) messageView {
	return messageView{ID: m.ID, EventType: m.EventType, Timestamp: m.Timestamp, CreatedAt: m.CreatedAt}
}

func newDeliveryView(d attemptlog.Delivery) deliveryView {
	return deliveryView{
		EndpointID:       d.EndpointID,
		MessageID:        d.MessageID,
		EventType:        d.EventType,
		State:            stateName(d.State),
		Reason:           d.Reason,
		UpdatedAt:        timePtr(d.UpdatedAt),
		Attempts:         d.Attempts,
		LastAttemptID:    d.LastAttemptID,
		LastAttemptAt:    timePtr(d.LastAttemptAt),
		LastOutcome:      outcomeName(d.LastOutcome),
		LastStatusCode:   d.LastStatusCode,
		NextAttemptAt:    timePtr(d.NextAttemptAt),
		MessageCreatedAt: d.MessageCreatedAt,
	}
}

func newAttemptView(a attemptlog.AttemptSummary) attemptView {
	v := attemptView{
		ID:            a.ID,
		MessageID:     a.MessageID,
		EndpointID:    a.EndpointID,
		EventType:     a.EventType,
		Attempt:       a.Attempt,
		Outcome:       outcomeName(a.Outcome),
		StatusCode:    a.StatusCode,
		DurationMS:    float64(a.Duration.Microseconds()) / 1000,
		Timestamp:     a.StartedAt,
		State:         stateName(a.State),
		NextAttemptAt: timePtr(a.NextAttemptAt),
	}
	if a.State != eventv1.DeliveryState_DELIVERY_STATE_RETRYING {
		v.NextAttemptAt = nil
	}
	return v
}

func headerViews(hs []*eventv1.Header) []headerView {
	out := make([]headerView, len(hs))
	for i, h := range hs {
		out[i] = headerView{Name: h.GetName(), Value: h.GetValue()}
	}
	return out
}

func newAttemptDetailView(a *eventv1.Attempt) attemptDetailView {
	sum := attemptlog.AttemptSummary{
		ID:         a.GetId(),
		MessageID:  a.GetMessageId(),
		EndpointID: a.GetEndpointId(),
		EventType:  a.GetEventType(),
		Attempt:    a.GetAttempt(),
		Outcome:    a.GetOutcome(),
		StatusCode: a.GetStatusCode(),
		Duration:   time.Duration(a.GetDurationUs()) * time.Microsecond,
		StartedAt:  a.GetStartedAt().AsTime().UTC(),
		State:      a.GetState(),
	}
	if a.GetNextAttemptAt() != nil {
		sum.NextAttemptAt = a.GetNextAttemptAt().AsTime().UTC()
	}
	v := attemptDetailView{
		attemptView:          newAttemptView(sum),
		URL:                  a.GetUrl(),
		Error:                a.GetError(),
		RequestHeaders:       headerViews(a.GetRequestHeaders()),
		ResponseHeaders:      headerViews(a.GetResponseHeaders()),
		ResponseBody:         string(a.GetResponseBody()),
		ResponseBodyEncoding: "text",
		TraceID:              a.GetTraceId(),
	}
	if !utf8.Valid(a.GetResponseBody()) {
		v.ResponseBody = base64.StdEncoding.EncodeToString(a.GetResponseBody())
		v.ResponseBodyEncoding = "base64"
	}
	return v
}

// logQuery reads ?limit=, ?iterator= and the time range: ?since= and
// ?until= (RFC 3339; since ≤ t < until), or their older names ?after= and
// ?before=. A malformed time is a 400 naming the parameter.
func logQuery(r *http.Request) (attemptlog.Query, error) {
	iterator, limit, err := pageParams(r)
	if err != nil {
		return attemptlog.Query{}, err
	}
	q := attemptlog.Query{Cursor: iterator, Limit: limit}
	v := r.URL.Query()
	for _, p := range []struct {
		name, alias string
		dst         *time.Time
	}{{"since", "after", &q.After}, {"until", "before", &q.Before}} {
		name, val := p.name, v.Get(p.name)
		if a := v.Get(p.alias); a != "" {
			if val != "" {
				return q, badParam(p.name, "and %s are the same bound; give one of them", p.alias)
			}
			name, val = p.alias, a
		}
		if val == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, val)
		if err != nil {
			return q, badParam(name, "must be an RFC 3339 time such as 2026-12-07T10:00:00Z, got %q", val)
		}
		*p.dst = t
	}
	if !q.After.IsZero() && !q.Before.IsZero() && !q.After.Before(q.Before) {
		return q, badParam("until", "must be later than since")
	}
	return q, nil
}

// logErr answers an attempt-log error: unknown ids are 404, foreign
// iterators 400.
func (s *Service) logErr(w http.ResponseWriter, r *http.Request, err error, what, id string) {
	switch {
	case errors.Is(err, attemptlog.ErrNotFound):
		err = notFound(what, id)
	case errors.Is(err, attemptlog.ErrBadCursor):
		err = badRequest("invalid_iterator", "iterator is not one this list returned")
	}
	writeErr(w, r, s.log, err)
}

// tenantEndpoint returns the tenant's endpoint named in the path: another
// tenant's, or a deleted one, is 404.
func (s *Service) tenantEndpoint(r *http.Request, tenantID string) (*configv1.Endpoint, error) {
	return s.store.GetEndpoint(r.Context(), tenantID, r.PathValue("id"))
}

func (s *Service) listMessages(w http.ResponseWriter, r *http.Request, tenantID string) {
	s.messageLog(w, r, tenantID)
}

// logPage wraps one page of the attempt log.
func logPage[T any](items []T, next string) listPage[T] {
	lp := listPage[T]{Data: items, Done: next == ""}
	if lp.Data == nil {
		lp.Data = []T{}
	}
	if next != "" {
		lp.Iterator = &next
	}
	return lp
}

func (s *Service) getMessage(w http.ResponseWriter, r *http.Request, tenantID string) {
	id := r.PathValue("msg_id")
	m, err := s.alog.Message(r.Context(), tenantID, id)
	if err != nil {
		s.logErr(w, r, err, "message", id)
		return
	}
	v := messageDetailView{messageView: newMessageView(m), Payload: nil, Deliveries: []deliveryView{}}
	ev, err := s.replay.event(r.Context(), m)
	switch {
	case errors.Is(err, attemptlog.ErrNotFound):
		v.Payload = json.RawMessage("null")
	case err != nil:
		writeErr(w, r, s.log, err)
		return
	default:
		v.Payload = ev.GetPayload()
		if !json.Valid(v.Payload) {
			v.Payload = json.RawMessage("null")
		}
	}
	ds, err := s.alog.MessageDeliveries(r.Context(), tenantID, id, maxDeliveriesShown)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	for _, d := range ds {
		v.Deliveries = append(v.Deliveries, newDeliveryView(d))
	}
	slices.SortFunc(v.Deliveries, func(a, b deliveryView) int { return strings.Compare(a.EndpointID, b.EndpointID) })
	writeJSON(w, http.StatusOK, v)
}

func (s *Service) listMessageAttempts(w http.ResponseWriter, r *http.Request, tenantID string) {
	id := r.PathValue("msg_id")
	q, err := logQuery(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	if _, err := s.alog.Message(r.Context(), tenantID, id); err != nil {
		s.logErr(w, r, err, "message", id)
		return
	}
	p, err := s.alog.MessageAttempts(r.Context(), tenantID, id, q)
	if err != nil {
		s.logErr(w, r, err, "message", id)
		return
	}
	writeAttempts(w, p)
}

func writeAttempts(w http.ResponseWriter, p attemptlog.Page[attemptlog.AttemptSummary]) {
	views := make([]attemptView, len(p.Items))
	for i, a := range p.Items {
		views[i] = newAttemptView(a)
	}
	writeJSON(w, http.StatusOK, logPage(views, p.Next))
}

func (s *Service) listEndpointAttempts(w http.ResponseWriter, r *http.Request, tenantID string) {
	q, err := logQuery(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	aq := attemptlog.AttemptQuery{Query: q}
	if v := r.URL.Query().Get("outcome"); v != "" {
		if aq.Outcome, err = parseOutcome(v); err != nil {
			writeErr(w, r, s.log, err)
			return
		}
	}
	ep, err := s.tenantEndpoint(r, tenantID)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	p, err := s.alog.EndpointAttempts(r.Context(), tenantID, ep.GetId(), aq)
	if err != nil {
		s.logErr(w, r, err, "endpoint", ep.GetId())
		return
	}
	writeAttempts(w, p)
}

func (s *Service) listEndpointMessages(w http.ResponseWriter, r *http.Request, tenantID string) {
	q, err := logQuery(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	ep, err := s.tenantEndpoint(r, tenantID)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	p, err := s.alog.EndpointDeliveries(r.Context(), tenantID, ep.GetId(), attemptlog.DeliveryQuery{Query: q})
	if err != nil {
		s.logErr(w, r, err, "endpoint", ep.GetId())
		return
	}
	views := make([]deliveryView, len(p.Items))
	for i, d := range p.Items {
		views[i] = newDeliveryView(d)
	}
	writeJSON(w, http.StatusOK, logPage(views, p.Next))
}

func (s *Service) getAttempt(w http.ResponseWriter, r *http.Request, tenantID string) {
	id := r.PathValue("attempt_id")
	seq, err := s.alog.AttemptSequence(r.Context(), tenantID, id)
	if err != nil {
		s.logErr(w, r, err, "attempt", id)
		return
	}
	stream, err := s.replay.stream(r.Context(), streams.Attempts)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	a, err := attemptlog.LoadAttempt(r.Context(), stream, seq, tenantID, id)
	if err != nil {
		s.logErr(w, r, err, "attempt", id)
		return
	}
	writeJSON(w, http.StatusOK, newAttemptDetailView(a))
}

func (s *Service) endpointStats(w http.ResponseWriter, r *http.Request, tenantID string) {
	ep, err := s.tenantEndpoint(r, tenantID)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	n := statsHours
	if v := r.URL.Query().Get("hours"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > maxStatsHours {
			writeErr(w, r, s.log, invalid("hours", "must be a whole number of hours from 1 to %d (7 days), got %q", maxStatsHours, v))
			return
		}
	}
	hours, err := s.alog.EndpointStats(r.Context(), tenantID, ep.GetId(), n)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	v := statsView{EndpointID: ep.GetId(), Hours: make([]hourStatsView, len(hours))}
	for i, h := range hours {
		v.Hours[i] = hourStatsView{Hour: h.Hour, Success: h.Success, Failure: h.Failure}
		v.Success += h.Success
		v.Failure += h.Failure
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Service) resendMessage(w http.ResponseWriter, r *http.Request, tenantID string) {
	ep, err := s.tenantEndpoint(r, tenantID)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	msgID := r.PathValue("msg_id")
	m, err := s.alog.Message(r.Context(), tenantID, msgID)
	if err != nil {
		s.logErr(w, r, err, "message", msgID)
		return
	}
	id, err := s.replay.resend(r.Context(), ep, m)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	s.log.InfoContext(r.Context(), "message resent", "tenant_id", tenantID, "endpoint_id", ep.GetId(), "message_id", m.ID, "resend_id", id)
	writeJSON(w, http.StatusAccepted, resendView{ID: id, MessageID: m.ID, EndpointID: ep.GetId()})
}

func (s *Service) recoverEndpoint(w http.ResponseWriter, r *http.Request, tenantID string) {
	var body recoverBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	since, until, err := s.recoverRange(body)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	ep, err := s.tenantEndpoint(r, tenantID)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	rec, err := s.replay.recover(r.Context(), s.alog, ep, since, until, body.IncludeRetrying)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	s.log.InfoContext(r.Context(), "failed deliveries recovered", "tenant_id", tenantID, "endpoint_id", ep.GetId(), "recover_id", rec.ID, "count", rec.Count, "more", rec.More, "include_retrying", body.IncludeRetrying)
	writeJSON(w, http.StatusAccepted, recoverView{ID: rec.ID, Count: rec.Count, More: rec.More, NextSince: rec.NextSince})
}

// recoverRange checks a recover request's times: since is required and
// within the attempt log's retention, until (optional) after it.
func (s *Service) recoverRange(body recoverBody) (time.Time, *time.Time, error) {
	if body.Since == nil || *body.Since == "" {
		return time.Time{}, nil, invalid("since", "is required: an RFC 3339 time")
	}
	since, err := time.Parse(time.RFC3339Nano, *body.Since)
	if err != nil {
		return time.Time{}, nil, invalid("since", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", *body.Since)
	}
	if oldest := s.alog.Now().Add(-s.cfg.AttemptRetention); since.Before(oldest) {
		return time.Time{}, nil, invalid("since", "must be within the attempt log's retention of %s (after %s)", portal.HumanDuration(s.cfg.AttemptRetention), oldest.UTC().Format(time.RFC3339))
	}
	if body.Until == nil {
		return since.UTC(), nil, nil
	}
	until, err := time.Parse(time.RFC3339Nano, *body.Until)
	if err != nil {
		return time.Time{}, nil, invalid("until", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", *body.Until)
	}
	if !until.After(since) {
		return time.Time{}, nil, invalid("until", "must be later than since")
	}
	until = until.UTC()
	return since.UTC(), &until, nil
}
