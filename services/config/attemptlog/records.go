package attemptlog

import (
	"encoding/binary"
	"errors"
	"time"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Message is an event as the log knows it: what the EVENTS stream holds,
// without the payload (read back from the stream by Sequence).
type Message struct {
	ID        string
	TenantID  string
	EventType string
	// Timestamp is the event's own time, as its publisher gave it.
	Timestamp time.Time
	// CreatedAt is when ingest accepted it (the time in its id); messages
	// are ordered and filtered by it.
	CreatedAt time.Time
	// Sequence is the event's sequence in the EVENTS stream.
	Sequence uint64
}

// AttemptSummary is an attempt as lists show it; Store.Attempt returns the
// whole record.
type AttemptSummary struct {
	ID            string
	MessageID     string
	EndpointID    string
	EventType     string
	Attempt       uint32
	Outcome       eventv1.Outcome
	StatusCode    int32
	Duration      time.Duration
	StartedAt     time.Time
	State         eventv1.DeliveryState
	NextAttemptAt time.Time
}

// Delivery is the status of one message's delivery to one endpoint: the
// state its latest decision left it in (an attempt, or a state record of
// fanout, delivery or a resend), and how many attempts were made.
type Delivery struct {
	MessageID  string
	EndpointID string
	EventType  string
	// MessageCreatedAt is the message's CreatedAt.
	MessageCreatedAt time.Time
	State            eventv1.DeliveryState
	Attempts         uint32
	LastAttemptID    string
	LastAttemptAt    time.Time
	LastOutcome      eventv1.Outcome
	LastStatusCode   int32
	NextAttemptAt    time.Time
	// UpdatedAt is when the decision that set State was made (an
	// attempt's end, a state record's time).
	UpdatedAt time.Time
	// Reason says why, for a state set without an attempt ("lane full",
	// "resent"…); "" when an attempt set it.
	Reason string
}

// HourStats counts an endpoint's attempts in one hour.
type HourStats struct {
	Hour    time.Time
	Success uint64
	Failure uint64
}

// errCorrupt is wrapped by errors for values that do not decode.
var errCorrupt = errors.New("attemptlog: corrupt value")

// Values are a record version byte, then fields in order: strings as a
// uvarint length and bytes, numbers as uvarints (signed ones zig-zag),
// times as Unix nanoseconds (0 = unset).
const recordVersion = 1

type encoder struct{ b []byte }

func newEncoder(n int) *encoder {
	e := &encoder{b: make([]byte, 0, n)}
	e.b = append(e.b, recordVersion)
	return e
}

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) int(v int64) { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) time(t time.Time) { e.uint(nanos(t)) }

type decoder struct {
	b   []byte
	bad bool
}

func newDecoder(b []byte) *decoder {
	if len(b) == 0 || b[0] != recordVersion {
		return &decoder{bad: true}
	}
	return &decoder{b: b[1:]}
}

func (d *decoder) uint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 {
	if d.bad {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	n := d.uint()
	if n == 0 || n > 1<<63-1 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

// rest reports whether fields follow (values written before a field was
// added end earlier).
func (d *decoder) rest() bool { return !d.bad && len(d.b) > 0 }

func (d *decoder) err() error {
	if d.bad {
		return errCorrupt
	}
	return nil
}

func encodeMessage(m *Message) []byte {
	e := newEncoder(64 + len(m.ID) + len(m.TenantID) + len(m.EventType))
	e.str(m.ID)
	e.str(m.TenantID)
	e.str(m.EventType)
	e.time(m.Timestamp)
	e.time(m.CreatedAt)
	e.uint(m.Sequence)
	return e.b
}

func decodeMessage(b []byte) (Message, error) {
	d := newDecoder(b)
	m := Message{ID: d.str(), TenantID: d.str(), EventType: d.str(), Timestamp: d.time(), CreatedAt: d.time(), Sequence: d.uint()}
	return m, d.err()
}

func encodeSummary(a *AttemptSummary) []byte {
	e := newEncoder(96 + len(a.ID) + len(a.MessageID) + len(a.EndpointID) + len(a.EventType))
	e.str(a.ID)
	e.str(a.MessageID)
	e.str(a.EndpointID)
	e.str(a.EventType)
	e.uint(uint64(a.Attempt))
	e.uint(uint64(a.Outcome))
	e.int(int64(a.StatusCode))
	e.int(a.Duration.Microseconds())
	e.time(a.StartedAt)
	e.uint(uint64(a.State))
	e.time(a.NextAttemptAt)
	return e.b
}

func decodeSummary(b []byte) (AttemptSummary, error) {
	d := newDecoder(b)
	a := AttemptSummary{
		ID:         d.str(),
		MessageID:  d.str(),
		EndpointID: d.str(),
		EventType:  d.str(),
		Attempt:    uint32(d.uint()),
		Outcome:    eventv1.Outcome(d.uint()),
		StatusCode: int32(d.int()),
		Duration:   time.Duration(d.int()) * time.Microsecond,
		StartedAt:  d.time(),
		State:      eventv1.DeliveryState(d.uint()),
	}
	a.NextAttemptAt = d.time()
	return a, d.err()
}

func encodeDelivery(s *Delivery) []byte {
	e := newEncoder(128 + len(s.Reason) + len(s.MessageID) + len(s.EndpointID) + len(s.EventType) + len(s.LastAttemptID))
	e.str(s.MessageID)
	e.str(s.EndpointID)
	e.str(s.EventType)
	e.time(s.MessageCreatedAt)
	e.uint(uint64(s.State))
	e.uint(uint64(s.Attempts))
	e.str(s.LastAttemptID)
	e.time(s.LastAttemptAt)
	e.uint(uint64(s.LastOutcome))
	e.int(int64(s.LastStatusCode))
	e.time(s.NextAttemptAt)
	e.time(s.UpdatedAt)
	e.str(s.Reason)
	return e.b
}

func decodeDelivery(b []byte) (Delivery, error) {
	d := newDecoder(b)
	s := Delivery{
		MessageID:        d.str(),
		EndpointID:       d.str(),
		EventType:        d.str(),
		MessageCreatedAt: d.time(),
		State:            eventv1.DeliveryState(d.uint()),
		Attempts:         uint32(d.uint()),
		LastAttemptID:    d.str(),
		LastAttemptAt:    d.time(),
		LastOutcome:      eventv1.Outcome(d.uint()),
		LastStatusCode:   int32(d.int()),
	}
	s.NextAttemptAt = d.time()
	if d.rest() {
		s.UpdatedAt = d.time()
		s.Reason = d.str()
	}
	if s.UpdatedAt.IsZero() && !s.LastAttemptAt.IsZero() {
		s.UpdatedAt = s.LastAttemptAt
	}
	return s, d.err()
}

// failedRef is the value of an F key: the delivery an attempt left failed.
type failedRef struct {
	MessageID string
	AttemptID string
}

func encodeFailed(f failedRef) []byte {
	e := newEncoder(8 + len(f.MessageID) + len(f.AttemptID))
	e.str(f.MessageID)
	e.str(f.AttemptID)
	return e.b
}

func decodeFailed(b []byte) (failedRef, error) {
	d := newDecoder(b)
	f := failedRef{MessageID: d.str(), AttemptID: d.str()}
	return f, d.err()
}

func encodeStats(success, failure uint64) []byte {
	e := newEncoder(12)
	e.uint(success)
	e.uint(failure)
	return e.b
}

func decodeStats(b []byte) (success, failure uint64, err error) {
	d := newDecoder(b)
	success, failure = d.uint(), d.uint()
	return success, failure, d.err()
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, errCorrupt
	}
	return binary.BigEndian.Uint64(b), nil
}
