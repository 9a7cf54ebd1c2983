package config

import (
	"errors"
	"net/http"
	"strings"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
	"github.com/pulsehooks/pulsehooks/services/config/attemptlog"
)

// Handlers of delivery states: an endpoint's deliveries by state, and the
// message log (one row per message with the states of its deliveries),
// filtered by state, event type and time, searched by message id or job id,
// paged both ways (iterator and prev_iterator).

// stateNames are the names of delivery states in the API, in the order a
// message's row shows the state of its deliveries (the first that one of
// them is in).
var stateNames = []struct {
	name string
	st   eventv1.DeliveryState
}{
	{"failed", eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED},
	{"dropped", eventv1.DeliveryState_DELIVERY_STATE_DROPPED},
	{"retrying", eventv1.DeliveryState_DELIVERY_STATE_RETRYING},
	{"put_off", eventv1.DeliveryState_DELIVERY_STATE_PUT_OFF},
	{"pending", eventv1.DeliveryState_DELIVERY_STATE_PENDING},
	{"succeeded", eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED},
}

// heldStates are the states of deliveries still to be attempted ("held").
var heldStates = []eventv1.DeliveryState{
	eventv1.DeliveryState_DELIVERY_STATE_PENDING,
	eventv1.DeliveryState_DELIVERY_STATE_PUT_OFF,
	eventv1.DeliveryState_DELIVERY_STATE_RETRYING,
}

// parseStates reads ?state=: a comma-separated list of pending, put_off,
// retrying, succeeded, failed, dropped, or held (pending, put_off and
// retrying).
func parseStates(r *http.Request) ([]eventv1.DeliveryState, error) {
	v := r.URL.Query().Get("state")
	if v == "" {
		return nil, nil
	}
	var out []eventv1.DeliveryState
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if name == "held" {
			out = append(out, heldStates...)
			continue
		}
		found := false
		for _, s := range stateNames {
			if s.name == name {
				out, found = append(out, s.st), true
			}
		}
		if !found {
			return nil, invalid("state", "must be pending, put_off, retrying, succeeded, failed, dropped or held (a comma-separated list), got %q", name)
		}
	}
	return out, nil
}

// messageRowView is a row of the message log: a message, the state of its
// deliveries taken together (the first of failed, dropped, retrying,
// put_off, pending, succeeded that one is in; "none" when it matched no
// endpoint) and the attempts made, with each delivery.
type messageRowView struct {
	messageView
	State      string         `json:"state"`
	Attempts   uint32         `json:"attempts"`
	Deliveries []deliveryView `json:"deliveries"`
}

// logPageView is a page of the message log or of an endpoint's
// deliveries: iterator continues to older rows, prev_iterator to newer.
type logPageView[T any] struct {
	listPage[T]
	PrevIterator *string `json:"prev_iterator"`
}

func newLogPage[T any](items []T, next, prev string) logPageView[T] {
	p := logPageView[T]{listPage: logPage(items, next)}
	if prev != "" {
		p.PrevIterator = &prev
	}
	return p
}

// rowState is the state shown for a message with deliveries ds.
func rowState(ds []attemptlog.Delivery) string {
	for _, s := range stateNames {
		for _, d := range ds {
			if d.State == s.st {
				return s.name
			}
		}
	}
	return "none"
}

// messageRows builds the rows of messages ms, each with its deliveries
// (for endpointID only, when set).
func (s *Service) messageRows(r *http.Request, tenantID, endpointID string, ms []attemptlog.Message) ([]messageRowView, error) {
	rows := make([]messageRowView, 0, len(ms))
	for _, m := range ms {
		ds, err := s.alog.MessageDeliveries(r.Context(), tenantID, m.ID, maxDeliveriesShown)
		if err != nil {
			return nil, err
		}
		row := messageRowView{messageView: newMessageView(m), Deliveries: []deliveryView{}}
		var kept []attemptlog.Delivery
		for _, d := range ds {
			if endpointID != "" && d.EndpointID != endpointID {
				continue
			}
			kept = append(kept, d)
			row.Attempts += d.Attempts
			row.Deliveries = append(row.Deliveries, newDeliveryView(d))
		}
		row.State = rowState(kept)
		rows = append(rows, row)
	}
	return rows, nil
}

// searchMessage answers a search by message id (or webhook-id, the same):
// the one message, or none.
func (s *Service) searchMessage(r *http.Request, tenantID, id string) ([]attemptlog.Message, error) {
	m, err := s.alog.Message(r.Context(), tenantID, id)
	if errors.Is(err, attemptlog.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if t := r.URL.Query().Get("event_type"); t != "" && m.EventType != t {
		return nil, nil
	}
	return []attemptlog.Message{m}, nil
}

// messageLog answers GET /v1/messages: the tenant's messages, newest first,
// one row each with its deliveries. ?state= keeps messages with a
// delivery in one of the states (each message once); ?message_id= or
// ?webhook_id= finds one message; ?job_id= the messages whose data carries
// that job id; ?event_type=, ?after=, ?before= filter.
func (s *Service) messageLog(w http.ResponseWriter, r *http.Request, tenantID string) {
	s.serveMessageLog(w, r, tenantID, "")
}

// serveMessageLog is the message log of a tenant, or of one of its
// endpoints when endpointID is set.
func (s *Service) serveMessageLog(w http.ResponseWriter, r *http.Request, tenantID, endpointID string) {
	q, err := logQuery(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	states, err := parseStates(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	v := r.URL.Query()
	eventType := v.Get("event_type")
	var (
		ms         []attemptlog.Message
		next, prev string
	)
	switch id := firstOf(v.Get("message_id"), v.Get("webhook_id")); {
	case id != "":
		ms, err = s.searchMessage(r, tenantID, id)
	case v.Get("job_id") != "":
		var p attemptlog.Page[attemptlog.Message]
		p, err = s.alog.MessagesByJob(r.Context(), tenantID, v.Get("job_id"), attemptlog.MessageQuery{Query: q, EventType: eventType})
		ms, next, prev = p.Items, p.Next, p.Prev
	case len(states) > 0 || endpointID != "":
		var p attemptlog.Page[attemptlog.Delivery]
		dq := attemptlog.DeliveryQuery{Query: q, States: states, EventType: eventType}
		if endpointID != "" {
			p, err = s.alog.EndpointDeliveries(r.Context(), tenantID, endpointID, dq)
		} else {
			p, err = s.alog.TenantDeliveries(r.Context(), tenantID, dq)
		}
		next, prev = p.Next, p.Prev
		// Each message once: the tenant's list has an item per delivery,
		// and the page before may have ended inside a message's.
		seen := map[string]bool{}
		if endpointID == "" && q.Cursor != "" {
			if msg, _, ok := strings.Cut(attemptlog.CursorItem(q.Cursor), "."); ok {
				seen[msg] = true
			}
		}
		for _, d := range p.Items {
			if seen[d.MessageID] {
				continue
			}
			seen[d.MessageID] = true
			m, merr := s.alog.Message(r.Context(), tenantID, d.MessageID)
			if errors.Is(merr, attemptlog.ErrNotFound) {
				continue
			}
			if err = merr; err != nil {
				break
			}
			ms = append(ms, m)
		}
	default:
		var p attemptlog.Page[attemptlog.Message]
		p, err = s.alog.Messages(r.Context(), tenantID, attemptlog.MessageQuery{Query: q, EventType: eventType})
		ms, next, prev = p.Items, p.Next, p.Prev
	}
	if err != nil {
		s.logErr(w, r, err, "message", "")
		return
	}
	rows, err := s.messageRows(r, tenantID, endpointID, ms)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newLogPage(rows, next, prev))
}

// listEndpointDeliveries answers GET /v1/endpoints/{id}/deliveries: the
// endpoint's deliveries, newest message first, with ?state= (held for those
// waiting), ?event_type=, ?after=, ?before=.
func (s *Service) listEndpointDeliveries(w http.ResponseWriter, r *http.Request, tenantID string) {
	q, err := logQuery(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	states, err := parseStates(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	ep, err := s.tenantEndpoint(r, tenantID)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	p, err := s.alog.EndpointDeliveries(r.Context(), tenantID, ep.GetId(), attemptlog.DeliveryQuery{Query: q, States: states, EventType: r.URL.Query().Get("event_type")})
	if err != nil {
		s.logErr(w, r, err, "endpoint", ep.GetId())
		return
	}
	views := make([]deliveryView, len(p.Items))
	for i, d := range p.Items {
		views[i] = newDeliveryView(d)
	}
	writeJSON(w, http.StatusOK, newLogPage(views, p.Next, p.Prev))
}

// endpointMessageLog answers GET /v1/endpoints/{id}/message-log: the
// message log of one endpoint (rows of its deliveries only).
func (s *Service) endpointMessageLog(w http.ResponseWriter, r *http.Request, tenantID string) {
	ep, err := s.tenantEndpoint(r, tenantID)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	s.serveMessageLog(w, r, tenantID, ep.GetId())
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
