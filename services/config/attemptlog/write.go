package attemptlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tidwall/gjson"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// positionKey is the meta key of a stream's indexed position.
func positionKey(stream string) ([]byte, error) {
	switch stream {
	case streams.Events:
		return keyEventsPosition, nil
	case streams.Attempts:
		return keyAttemptsPosition, nil
	case streams.States:
		return keyStatesPosition, nil
	}
	return nil, fmt.Errorf("attemptlog: no position for stream %q", stream)
}

// createdKey is the meta key of the creation time of the stream a position
// is in.
func createdKey(stream string) ([]byte, error) {
	switch stream {
	case streams.Events:
		return keyEventsCreated, nil
	case streams.Attempts:
		return keyAttemptsCreated, nil
	case streams.States:
		return keyStatesCreated, nil
	}
	return nil, fmt.Errorf("attemptlog: no position for stream %q", stream)
}

// Batch collects the records of a run of stream messages and stores them
// atomically with the stream position they reach, so that the store never
// holds a record without its position or the reverse. A Batch is used by
// one goroutine; batches of different streams may be committed concurrently
// (events touch keys of their own; a batch that changes delivery statuses,
// from ATTEMPTS or STATES, holds the store's delivery lock from its first
// read of one until it is closed).
type Batch struct {
	s      *Store
	b      *pebble.Batch
	now    time.Time
	n      int
	locked bool
	// deliveries and stats are the records read and changed by this
	// batch, by key, written at Commit.
	deliveries map[string]*deliveryEntry
	stats      map[string]*[2]uint64
}

// deliveryEntry is a changed delivery status, its endpoint-list key, and
// what the state indexes hold for it now.
type deliveryEntry struct {
	d       Delivery
	listKey []byte
	tenant  string
	bucket  uint32
	// stored is whether the status existed before this batch, in state
	// storedState.
	stored      bool
	storedState eventv1.DeliveryState
}

// stateKeys are the keys of a delivery status in state st in the endpoint's
// and the tenant's state indexes.
func (e *deliveryEntry) stateKeys(st eventv1.DeliveryState) (endpoint, tenant []byte) {
	d := &e.d
	endpoint = append(scopeKey(e.bucket, tableEndpointState, e.tenant, d.EndpointID), byte(st))
	endpoint = append(endpoint, sortKey(d.MessageCreatedAt, d.MessageID)...)
	tenant = append(scopeKey(e.bucket, tableTenantState, e.tenant), byte(st))
	tenant = append(tenant, sortKey(d.MessageCreatedAt, d.MessageID+"."+d.EndpointID)...)
	return endpoint, tenant
}

// NewBatch starts a batch. Close it after Commit, or to discard it.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, b: s.db.NewBatch(), now: s.now(), deliveries: map[string]*deliveryEntry{}, stats: map[string]*[2]uint64{}}
}

// Len is the number of records added.
func (b *Batch) Len() int { return b.n }

// Close releases the batch (and the delivery lock, if it holds it).
func (b *Batch) Close() {
	_ = b.b.Close()
	if b.locked {
		b.locked = false
		b.s.deliveryMu.Unlock()
	}
}

// lockDeliveries takes the store's delivery lock for the rest of the batch.
func (b *Batch) lockDeliveries() {
	if !b.locked {
		b.s.deliveryMu.Lock()
		b.locked = true
	}
}

// Commit stores the batch with stream's position pos.
func (b *Batch) Commit(stream string, pos uint64) error {
	key, err := positionKey(stream)
	if err != nil {
		return err
	}
	for k, e := range b.deliveries {
		val := encodeDelivery(&e.d)
		if err := b.set([]byte(k), val); err != nil {
			return err
		}
		if err := b.set(e.listKey, val); err != nil {
			return err
		}
		if e.stored && e.storedState != e.d.State {
			oldEp, oldTenant := e.stateKeys(e.storedState)
			for _, k := range [][]byte{oldEp, oldTenant} {
				if err := b.b.Delete(k, nil); err != nil {
					return fmt.Errorf("attemptlog: write: %w", err)
				}
			}
		}
		ep, tenant := e.stateKeys(e.d.State)
		if err := b.set(ep, val); err != nil {
			return err
		}
		if err := b.set(tenant, val); err != nil {
			return err
		}
	}
	for k, c := range b.stats {
		if err := b.set([]byte(k), encodeStats(c[0], c[1])); err != nil {
			return err
		}
	}
	if err := b.b.Set(key, encodeUint(pos), nil); err != nil {
		return fmt.Errorf("attemptlog: set position: %w", err)
	}
	// No fsync: a crash of the machine loses a suffix of the log, records
	// and position together, and the indexer reads them again.
	if err := b.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("attemptlog: commit: %w", err)
	}
	return nil
}

// keyable reports whether ids can be parts of keys (no NUL, not empty).
func keyable(parts ...string) bool {
	for _, p := range parts {
		if p == "" || strings.IndexByte(p, 0) >= 0 {
			return false
		}
	}
	return true
}

// messageTime is when a message was accepted: the time in its id, or else
// fallback.
func messageTime(id string, fallback time.Time) time.Time {
	if t, ok := idTime(id); ok {
		return t
	}
	return fallback.UTC()
}

// ErrUnindexable is wrapped by errors for records that cannot be indexed
// (missing ids); the indexer logs and skips them.
var ErrUnindexable = errors.New("record cannot be indexed")

// AddEvent adds the event stored at seq in EVENTS. Events older than the
// retention are skipped.
func (b *Batch) AddEvent(seq uint64, ev *eventv1.Event) error {
	if !keyable(ev.GetMessageId(), ev.GetTenantId(), ev.GetEventType()) {
		return fmt.Errorf("event at %d without message id, tenant or type: %w", seq, ErrUnindexable)
	}
	fallback := ev.GetAcceptedAt().AsTime()
	if ev.GetAcceptedAt() == nil {
		fallback = ev.GetTimestamp().AsTime()
	}
	created := messageTime(ev.GetMessageId(), fallback)
	if created.Before(b.s.cutoff(b.now)) {
		return nil
	}
	m := &Message{
		ID:        ev.GetMessageId(),
		TenantID:  ev.GetTenantId(),
		EventType: ev.GetEventType(),
		Timestamp: ev.GetTimestamp().AsTime().UTC(),
		CreatedAt: created,
		Sequence:  seq,
	}
	val := encodeMessage(m)
	bk := b.s.bucketOf(created)
	sk := sortKey(created, m.ID)
	if err := b.set(scopeKey(bk, tableMessage, m.TenantID, m.ID), val); err != nil {
		return err
	}
	if err := b.set(append(scopeKey(bk, tableTenantMessages, m.TenantID), sk...), val); err != nil {
		return err
	}
	if err := b.set(append(scopeKey(bk, tableTypeMessages, m.TenantID, m.EventType), sk...), val); err != nil {
		return err
	}
	if job := jobID(ev.GetPayload(), b.s.jobField); keyable(job) && len(job) <= maxJobID {
		if err := b.set(append(scopeKey(bk, tableJobMessages, m.TenantID, job), sk...), val); err != nil {
			return err
		}
	}
	b.n++
	return nil
}

// maxJobID bounds the job ids indexed (longer ones are not searchable).
const maxJobID = 256

// jobID is the value of data.<field> in an event's payload
// ({"type","timestamp","data"}), a string or the text of a number; "" when
// it has none.
func jobID(payload []byte, field string) string {
	r := gjson.GetBytes(payload, "data."+gjson.Escape(field))
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Number:
		return r.Raw
	}
	return ""
}

// AddAttempt adds the attempt stored at seq in ATTEMPTS (the record itself
// stays there: the store keeps its summary and sequence). Attempts older than the retention are skipped, and so is an
// attempt that is its delivery's latest already (stored twice in the stream):
// positions are stored with the records, so the indexer never reads a
// message twice.
func (b *Batch) AddAttempt(seq uint64, a *eventv1.Attempt) error {
	tenant, ep, msg := a.GetTenantId(), a.GetEndpointId(), a.GetMessageId()
	if !keyable(a.GetId(), tenant, ep, msg) {
		return fmt.Errorf("attempt %q without id, tenant, endpoint or message: %w", a.GetId(), ErrUnindexable)
	}
	started := a.GetStartedAt().AsTime().UTC()
	if a.GetStartedAt() == nil {
		started, _ = idTime(a.GetId())
	}
	if started.Before(b.s.cutoff(b.now)) {
		return nil
	}
	bk := b.s.bucketOf(started)
	sum := &AttemptSummary{
		ID:         a.GetId(),
		MessageID:  msg,
		EndpointID: ep,
		EventType:  a.GetEventType(),
		Attempt:    a.GetAttempt(),
		Outcome:    a.GetOutcome(),
		StatusCode: a.GetStatusCode(),
		Duration:   time.Duration(a.GetDurationUs()) * time.Microsecond,
		StartedAt:  started,
		State:      a.GetState(),
	}
	if a.GetNextAttemptAt() != nil {
		sum.NextAttemptAt = a.GetNextAttemptAt().AsTime().UTC()
	}
	if dup, err := b.updateDelivery(tenant, sum); err != nil || dup {
		return err
	}
	if err := b.set(scopeKey(bk, tableAttempt, tenant, a.GetId()), encodeUint(seq)); err != nil {
		return err
	}
	val := encodeSummary(sum)
	sk := sortKey(started, a.GetId())
	outcome := scopeKey(bk, tableOutcomeAttempt, tenant, ep)
	outcome = append(outcome, byte(a.GetOutcome()))
	for _, k := range [][]byte{
		append(scopeKey(bk, tableEndpointAttempt, tenant, ep), sk...),
		append(outcome, sk...),
		append(scopeKey(bk, tableMessageAttempt, tenant, msg), sk...),
	} {
		if err := b.set(k, val); err != nil {
			return err
		}
	}
	switch a.GetState() {
	case eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED, eventv1.DeliveryState_DELIVERY_STATE_DROPPED:
		ref := encodeFailed(failedRef{MessageID: msg, AttemptID: a.GetId()})
		if err := b.set(append(scopeKey(bk, tableFailed, tenant, ep), sk...), ref); err != nil {
			return err
		}
	}
	if err := b.count(tenant, ep, started, a.GetOutcome() == eventv1.Outcome_OUTCOME_SUCCESS); err != nil {
		return err
	}
	b.n++
	return nil
}

// updateDelivery folds attempt a into the status of its delivery: one more
// attempt, the latest attempt by start time, and the state of the latest
// decision (this attempt's end, unless a state record is later). dup
// reports an attempt that is the delivery's latest already.
func (b *Batch) updateDelivery(tenant string, a *AttemptSummary) (dup bool, err error) {
	e, err := b.delivery(tenant, a.MessageID, a.EndpointID, a.EventType, a.StartedAt)
	if err != nil {
		return false, err
	}
	if e.d.LastAttemptID == a.ID {
		return true, nil
	}
	d := &e.d
	d.Attempts++
	if d.LastAttemptID == "" || !a.StartedAt.Before(d.LastAttemptAt) {
		d.LastAttemptID = a.ID
		d.LastAttemptAt = a.StartedAt
		d.LastOutcome = a.Outcome
		d.LastStatusCode = a.StatusCode
	}
	if end := a.StartedAt.Add(a.Duration); d.UpdatedAt.IsZero() || !end.Before(d.UpdatedAt) {
		d.State = a.State
		d.NextAttemptAt = a.NextAttemptAt
		d.UpdatedAt = end
		d.Reason = ""
	}
	return false, nil
}

// delivery returns the status of msg's delivery to ep as this batch has
// it, read from the store on first use (zero, with its keys, when none).
func (b *Batch) delivery(tenant, msg, ep, eventType string, fallback time.Time) (*deliveryEntry, error) {
	b.lockDeliveries()
	created := messageTime(msg, fallback)
	mb := b.s.bucketOf(created)
	key := string(scopeKey(mb, tableDelivery, tenant, msg, ep))
	if e := b.deliveries[key]; e != nil {
		return e, nil
	}
	e := &deliveryEntry{
		d:       Delivery{MessageID: msg, EndpointID: ep, EventType: eventType, MessageCreatedAt: created},
		listKey: append(scopeKey(mb, tableEndpointMessage, tenant, ep), sortKey(created, msg)...),
		tenant:  tenant,
		bucket:  mb,
	}
	found, err := b.s.get([]byte(key), func(v []byte) error {
		var err error
		e.d, err = decodeDelivery(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attemptlog: delivery status of %s to %s: %w", msg, ep, err)
	}
	if found {
		e.stored, e.storedState = true, e.d.State
		if e.d.EventType == "" {
			e.d.EventType = eventType
		}
	}
	b.deliveries[key] = e
	return e, nil
}

// AddState adds the state record stored at seq in STATES: each delivery it
// names takes its state, unless a later decision (an attempt that ended
// after it, or a later record) set the state already. Records older than the
// retention are skipped.
func (b *Batch) AddState(_ uint64, r *eventv1.StateRecord) error {
	tenant, msg := r.GetTenantId(), r.GetMessageId()
	if !keyable(tenant, msg) || r.GetAt() == nil {
		return fmt.Errorf("state record %q without tenant, message or time: %w", r.GetId(), ErrUnindexable)
	}
	at := r.GetAt().AsTime().UTC()
	if at.Before(b.s.cutoff(b.now)) {
		return nil
	}
	for _, ep := range r.GetEndpointIds() {
		if !keyable(ep) {
			continue
		}
		e, err := b.delivery(tenant, msg, ep, r.GetEventType(), at)
		if err != nil {
			return err
		}
		d := &e.d
		if !d.UpdatedAt.IsZero() && at.Before(d.UpdatedAt) {
			continue
		}
		d.State = r.GetState()
		d.UpdatedAt = at
		d.Reason = r.GetReason()
		d.NextAttemptAt = time.Time{}
		if r.GetNextAttemptAt() != nil {
			d.NextAttemptAt = r.GetNextAttemptAt().AsTime().UTC()
		}
	}
	b.n++
	return nil
}

// count adds an attempt to its endpoint's hourly counters.
func (b *Batch) count(tenant, ep string, started time.Time, success bool) error {
	hour := started.Truncate(time.Hour)
	key := string(statsKey(b.s.bucketOf(hour), tenant, ep, hour))
	c := b.stats[key]
	if c == nil {
		c = &[2]uint64{}
		_, err := b.s.get([]byte(key), func(v []byte) error {
			var err error
			c[0], c[1], err = decodeStats(v)
			return err
		})
		if err != nil {
			return fmt.Errorf("attemptlog: stats of %s: %w", ep, err)
		}
		b.stats[key] = c
	}
	if success {
		c[0]++
	} else {
		c[1]++
	}
	return nil
}

// statsKey is the key of an endpoint's counters of an hour.
func statsKey(bucket uint32, tenant, ep string, hour time.Time) []byte {
	return binary.BigEndian.AppendUint32(scopeKey(bucket, tableStats, tenant, ep), uint32(max(hour.Unix(), 0)/3600))
}

func (b *Batch) set(key, val []byte) error {
	if err := b.b.Set(key, val, nil); err != nil {
		return fmt.Errorf("attemptlog: write: %w", err)
	}
	return nil
}
