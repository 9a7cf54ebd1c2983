package config

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

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
			return nil, badParam("state", "must be pending, put_off, retrying, succeeded, failed, dropped or held (a comma-separated list), got %q", name)
		}
	}
	return out, nil
}

// maxEventTypeFilter bounds the event types of one ?event_type= list.
const maxEventTypeFilter = 20

// parseEventTypes reads ?event_type=: one or several (comma-separated)
// event type names, each as ingest accepts them (no white space, '*', '>'
// or empty dot-separated part).
func parseEventTypes(r *http.Request) ([]string, error) {
	v := r.URL.Query().Get("event_type")
	if v == "" {
		return nil, nil
	}
	names := strings.Split(v, ",")
	if len(names) > maxEventTypeFilter {
		return nil, badParam("event_type", "lists %d event types; at most %d may be given", len(names), maxEventTypeFilter)
	}
	out := make([]string, 0, len(names))
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, badParam("event_type", "has an empty name; give event type names separated by commas, such as job.completed,job.failed")
		}
		if len(name) > maxEventTypeName || strings.ContainsAny(name, "*> \t") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") || !printable(name) {
			return nil, badParam("event_type", "%q is not an event type name (such as job.completed)", name)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// maxEventTypeName bounds an event type name in a filter.
const maxEventTypeName = 256

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
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
// the one message, or none when it is not there or the filters of q and
// types leave it out.
func (s *Service) searchMessage(r *http.Request, tenantID, id string, q attemptlog.Query, types []string) ([]attemptlog.Message, error) {
	m, err := s.alog.Message(r.Context(), tenantID, id)
	if errors.Is(err, attemptlog.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(types) > 0 && !slices.Contains(types, m.EventType) {
		return nil, nil
	}
	if (!q.After.IsZero() && m.CreatedAt.Before(q.After)) || (!q.Before.IsZero() && !m.CreatedAt.Before(q.Before)) {
		return nil, nil
	}
	return []attemptlog.Message{m}, nil
}

// messageLog answers GET /v1/messages: the tenant's messages, newest first,
// one row each with its deliveries. ?state= keeps messages with a
// delivery in one of the states (each message once); ?message_id= or
// ?webhook_id= finds one message; ?job_id= the messages whose data carries
// that job id; ?event_type= (one or several) and ?since=/?until= filter.
func (s *Service) messageLog(w http.ResponseWriter, r *http.Request, tenantID string) {
	s.serveMessageLog(w, r, tenantID, "")
}

// maxLogScans bounds the index scans of one message-log page served from
// delivery statuses (?state=, or an endpoint's log): each looks at no more
// than 10,000 index items (attemptlog's bound for a filter no index
// serves, an event type with a state), so a page looks at no more than
// 50,000. A page is short only when that bound ends it, and then its
// iterator goes on from where the scan stopped.
const maxLogScans = 5

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
	types, err := parseEventTypes(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	v := r.URL.Query()
	var (
		ms         []attemptlog.Message
		next, prev string
	)
	switch id := firstOf(v.Get("message_id"), v.Get("webhook_id")); {
	case id != "":
		ms, err = s.searchMessage(r, tenantID, id, q, types)
	case v.Get("job_id") != "":
		var p attemptlog.Page[attemptlog.Message]
		p, err = s.alog.MessagesByJob(r.Context(), tenantID, v.Get("job_id"), attemptlog.MessageQuery{Query: q, EventTypes: types})
		ms, next, prev = p.Items, p.Next, p.Prev
	case len(states) > 0 || endpointID != "":
		ms, next, prev, err = s.deliveryMessages(r, tenantID, endpointID, attemptlog.DeliveryQuery{Query: q, States: states, EventTypes: types})
	default:
		var p attemptlog.Page[attemptlog.Message]
		p, err = s.alog.Messages(r.Context(), tenantID, attemptlog.MessageQuery{Query: q, EventTypes: types})
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

// deliveryMessages is a page of the message log served from delivery
// statuses: the messages of the deliveries dq selects (of endpointID, or of
// every endpoint with dq.States), each once, newest first, with the
// iterators to older and newer messages.
//
// The tenant's list has an item per delivery, next to each other for one
// message, so a page of items can hold fewer messages than the limit. It
// scans on (at most maxLogScans scans) until the page has the limit, and
// ends a page only between two messages: the iterator is the last item of
// the last message taken, so no message is split over two pages, in
// either direction.
func (s *Service) deliveryMessages(r *http.Request, tenantID, endpointID string, dq attemptlog.DeliveryQuery) (ms []attemptlog.Message, next, prev string, err error) {
	ctx := r.Context()
	limit := dq.Limit
	older := attemptlog.CursorOlder(dq.Cursor)
	perDelivery := endpointID == ""
	seen := map[string]bool{}
	if perDelivery && dq.Cursor != "" {
		// The page the cursor came from ended with (or began with) this
		// message's items.
		if msg, _, ok := strings.Cut(attemptlog.CursorItem(dq.Cursor), "."); ok {
			seen[msg] = true
		}
	}
	var (
		stop  string // the iterator after the last item taken, when the page ended mid-list
		last  attemptlog.Page[attemptlog.Delivery]
		taken *attemptlog.Delivery // the last item taken, in scan order
	)
scans:
	for i := 0; i < maxLogScans; i++ {
		q := dq
		q.Limit = limit - len(ms)
		if perDelivery {
			// Room for the deliveries of the messages still to take.
			q.Limit = min(max(q.Limit*4, 50), 1000)
		}
		var p attemptlog.Page[attemptlog.Delivery]
		if perDelivery {
			p, err = s.alog.TenantDeliveries(ctx, tenantID, q)
		} else {
			p, err = s.alog.EndpointDeliveries(ctx, tenantID, endpointID, q)
		}
		if err != nil {
			return nil, "", "", err
		}
		if i == 0 {
			// The far end of the first scan is the page's far end.
			if older {
				prev = p.Prev
			} else {
				next = p.Next
			}
		}
		last = p
		items := p.Items // newest first; the scan ran newest first when older
		if !older {
			items = slices.Clone(items)
			slices.Reverse(items)
		}
		for j := range items {
			d := &items[j]
			if !seen[d.MessageID] && len(ms) == limit {
				stop = attemptlog.DeliveryCursor(*taken, older, perDelivery)
				break scans
			}
			taken = d
			if seen[d.MessageID] {
				continue
			}
			seen[d.MessageID] = true
			m, merr := s.alog.Message(ctx, tenantID, d.MessageID)
			if errors.Is(merr, attemptlog.ErrNotFound) {
				continue
			}
			if merr != nil {
				return nil, "", "", merr
			}
			ms = append(ms, m)
		}
		cont := p.Next
		if !older {
			cont = p.Prev
		}
		if cont == "" {
			break // the list is done
		}
		if len(ms) == limit {
			// Full: go on only to take the rest of the last message's
			// deliveries, in the next scan.
			if !perDelivery {
				stop = cont
				break
			}
		}
		dq.Cursor = cont
	}
	if stop == "" {
		stop = last.Next
		if !older {
			stop = last.Prev
		}
	}
	if older {
		next = stop
	} else {
		prev = stop
		slices.Reverse(ms)
	}
	return ms, next, prev, nil
}

// listEndpointDeliveries answers GET /v1/endpoints/{id}/deliveries: the
// endpoint's deliveries, newest message first, with ?state= (held for those
// waiting), ?event_type= (one or several), ?since=, ?until=.
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
	types, err := parseEventTypes(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	p, err := s.alog.EndpointDeliveries(r.Context(), tenantID, ep.GetId(), attemptlog.DeliveryQuery{Query: q, States: states, EventTypes: types})
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
