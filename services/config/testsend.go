package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// testEventTimestampLayout is the envelope's timestamp format, as ingest
// writes it.
const testEventTimestampLayout = "2006-01-02T15:04:05.000Z07:00"

// testSendBody is the body of POST /v1/endpoints/{id}/test.
type testSendBody struct {
	EventType string          `json:"event_type"`
	Payload   json.RawMessage `json:"payload"`
}

// testSendView answers an accepted test send.
type testSendView struct {
	MessageID string `json:"message_id"`
}

// testSender publishes test events to EVENTS, aimed at one endpoint.
type testSender struct {
	s  *Service
	js jetstream.JetStream
}

// sendTest publishes a test event of a catalog type to exactly one endpoint
// of the tenant: the event carries target_endpoint_id, which fanout honours.
// The payload defaults to the type's example; the answer's message_id lets
// the caller follow the attempt in the attempt log.
func (ts *testSender) sendTest(w http.ResponseWriter, r *http.Request, tenantID string) {
	s := ts.s
	var body testSendBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, true); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	ep, ok := s.state.endpoint(tenantID, r.PathValue("id"))
	if !ok {
		writeErr(w, r, s.log, fmt.Errorf("endpoint %s: %w", r.PathValue("id"), ErrNotFound))
		return
	}
	if body.EventType == "" {
		body.EventType = "pulsehooks.test"
	}
	var example []byte
	found := false
	for _, et := range s.state.allEventTypes() {
		if et.GetName() == body.EventType {
			example, found = []byte(et.GetExamplePayload()), true
			break
		}
	}
	if !found {
		writeErr(w, r, s.log, invalid("event_type", "%q is not in the event-type catalog", body.EventType))
		return
	}
	data := bytes.TrimSpace(body.Payload)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		data = example
	}
	if len(data) == 0 || data[0] != '{' {
		writeErr(w, r, s.log, invalid("payload", "must be a JSON object"))
		return
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		writeErr(w, r, s.log, invalid("payload", "is not valid JSON: %v", err))
		return
	}
	if !ep.GetEnabled() {
		// The delivery service drops deliveries of disabled endpoints: a
		// test send would never arrive.
		writeErr(w, r, s.log, &httpError{status: http.StatusConflict, code: "endpoint_disabled",
			message: "This endpoint is disabled, so a test message would never be sent. Enable the endpoint, then send the test again."})
		return
	}
	now := time.Now().UTC()
	typ, _ := json.Marshal(body.EventType) // names are [a-z0-9._-]
	payload := fmt.Appendf(nil, `{"type":%s,"timestamp":"%s","data":%s}`, typ, now.Format(testEventTimestampLayout), compact.Bytes())
	msgID := ids.New(ids.Message)
	raw, err := proto.Marshal(&eventv1.Event{
		MessageId:        msgID,
		TenantId:         tenantID,
		EventType:        body.EventType,
		Timestamp:        timestamppb.New(now),
		Payload:          payload,
		AcceptedAt:       timestamppb.New(now),
		TargetEndpointId: ep.GetId(),
	})
	if err != nil {
		writeErr(w, r, s.log, fmt.Errorf("encode test event: %w", err))
		return
	}
	msg := &nats.Msg{Subject: streams.EventSubject(tenantID, body.EventType), Data: raw, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	natsx.Inject(r.Context(), msg)
	if ts.js == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "test sends are unavailable: no event stream")
		return
	}
	if _, err := ts.js.PublishMsg(r.Context(), msg, jetstream.WithExpectStream(streams.Events)); err != nil {
		s.log.WarnContext(r.Context(), "publish test event", "endpoint_id", ep.GetId(), "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the event stream is unavailable; try again shortly")
		return
	}
	writeJSON(w, http.StatusAccepted, testSendView{MessageID: msgID})
}
