package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
	"github.com/pulsehooks/pulsehooks/services/config/attemptlog"
)

// KV buckets of resends and recover requests.
const (
	// BucketRecoveries records each recover request, by endpoint and time
	// range, so that the same request again sends nothing.
	BucketRecoveries = "ph_recoveries"
	// BucketResent marks each failed delivery a recover request sent again,
	// by endpoint and the attempt that left it failed, so that overlapping
	// requests send it once.
	BucketResent = "ph_resent"
)

// Limits of recover requests.
const (
	// MaxRecover is the most deliveries one recover request sends.
	MaxRecover = 10000
	// recoverConcurrency bounds the deliveries being queued at once.
	recoverConcurrency = 16
	// recoverStale is when a recover request still marked in progress is
	// taken to have died, and an identical request finishes it.
	recoverStale = 2 * time.Minute
	// resentTTL is how long a failed delivery sent again by a recover
	// request is not sent again by another one, unless a newer attempt has
	// failed since (it is attempted within hours; only a resend dropped
	// without an attempt — its endpoint was disabled — waits this long).
	resentTTL = 7 * 24 * time.Hour
	// resendPrefix prefixes the ids of resends by hand, recoverPrefix those
	// of recover requests.
	resendPrefix  = "rsnd"
	recoverPrefix = "rcvr"
)

// replayer sends stored messages again: one message to one endpoint (a
// resend) or every failed delivery of an endpoint in a time range (a
// recover request). It publishes eventv1.Delivery to DELIVERIES with a
// resend_id, so the delivery service sends it even if it succeeded before.
type replayer struct {
	js         jetstream.JetStream
	recoveries jetstream.KeyValue
	resent     jetstream.KeyValue
	now        func() time.Time

	mu         sync.Mutex
	partitions int
	streams    map[string]jetstream.Stream
}

// newReplayer creates or updates the buckets of recover requests.
func newReplayer(ctx context.Context, js jetstream.JetStream, cfg Config) (*replayer, error) {
	r := &replayer{js: js, now: time.Now, streams: map[string]jetstream.Stream{}}
	if _, err := streams.EnsureStates(ctx, js, streams.Options{Replicas: cfg.Replicas}); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		dst  *jetstream.KeyValue
		name string
		desc string
		ttl  time.Duration
	}{
		{&r.recoveries, BucketRecoveries, "pulsehooks recover requests by endpoint and time range", cfg.AttemptRetention},
		{&r.resent, BucketResent, "pulsehooks failed deliveries sent again by recover requests, by endpoint and attempt", resentTTL},
	} {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      b.name,
			Description: b.desc,
			History:     1,
			TTL:         b.ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("create or update KV bucket %s: %w", b.name, err)
		}
		*b.dst = kv
	}
	return r, nil
}

// stream returns a bound stream, looked up once.
func (r *replayer) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.streams[name]; ok {
		return s, nil
	}
	s, err := r.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, &httpError{status: http.StatusServiceUnavailable, code: "unavailable", message: "stream " + name + " does not exist yet; is the system running?"}
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", name, err)
	}
	r.streams[name] = s
	return s, nil
}

// partitionCount is the DELIVERIES partition count, read once.
func (r *replayer) partitionCount(ctx context.Context) (int, error) {
	r.mu.Lock()
	p := r.partitions
	r.mu.Unlock()
	if p > 0 {
		return p, nil
	}
	p, err := streams.PartitionsOf(ctx, r.js)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, &httpError{status: http.StatusServiceUnavailable, code: "unavailable", message: "stream DELIVERIES does not exist yet; is the delivery service running?"}
	}
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.partitions = p
	r.mu.Unlock()
	return p, nil
}

// event reads a message's event back from EVENTS.
func (r *replayer) event(ctx context.Context, m attemptlog.Message) (*eventv1.Event, error) {
	events, err := r.stream(ctx, streams.Events)
	if err != nil {
		return nil, err
	}
	return attemptlog.LoadEvent(ctx, events, m.Sequence, m.TenantID, m.ID)
}

// publish stores a delivery of ev (at seq in EVENTS) to endpointID with
// resendID, with Nats-Msg-Id <msg>.<endpoint>.<resend id> and the trace
// context of ctx.
func (r *replayer) publish(ctx context.Context, ev *eventv1.Event, seq uint64, endpointID, resendID string) error {
	p, err := r.partitionCount(ctx)
	if err != nil {
		return err
	}
	d := &eventv1.Delivery{
		MessageId:     ev.GetMessageId(),
		TenantId:      ev.GetTenantId(),
		EndpointId:    endpointID,
		EventType:     ev.GetEventType(),
		Payload:       ev.GetPayload(),
		EventSequence: seq,
		AcceptedAt:    ev.GetAcceptedAt(),
		ResendId:      resendID,
	}
	data, err := proto.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery: %w", err)
	}
	msg := &nats.Msg{Subject: streams.DeliverySubject(endpointID, p), Data: data, Header: nats.Header{}}
	natsx.Inject(ctx, msg)
	id := streams.ResendMsgID(d.GetMessageId(), endpointID, resendID)
	// The state's time is taken before the delivery is queued, so its
	// attempt, which ends later, always follows it in the attempt log.
	at := r.now()
	if _, err := r.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("queue delivery of %s to %s: %w", d.GetMessageId(), endpointID, err)
	}
	return r.recordPending(ctx, d, at)
}

// recordPending stores the state record of a queued resend or recovered
// delivery d: pending since at, "resent" or "recovered". It is stored
// after the delivery (a record of a delivery never queued would show a
// pending that never comes), under <resend id>.<message>.<endpoint> as its
// Nats-Msg-Id, so a retried request stores it once (a recover request's
// deliveries share its resend id, so the message tells them apart).
func (r *replayer) recordPending(ctx context.Context, d *eventv1.Delivery, at time.Time) error {
	reason := "resent"
	if strings.HasPrefix(d.GetResendId(), recoverPrefix+"_") {
		reason = "recovered"
	}
	rec := &eventv1.StateRecord{
		Id:          d.GetResendId() + "." + d.GetMessageId() + "." + d.GetEndpointId(),
		TenantId:    d.GetTenantId(),
		MessageId:   d.GetMessageId(),
		EventType:   d.GetEventType(),
		EndpointIds: []string{d.GetEndpointId()},
		State:       eventv1.DeliveryState_DELIVERY_STATE_PENDING,
		Reason:      reason,
		At:          timestamppb.New(at),
		ResendId:    d.GetResendId(),
	}
	data, err := proto.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode state record: %w", err)
	}
	msg := &nats.Msg{Subject: streams.StateSubject(d.GetTenantId(), streams.StateSourceConfig), Data: data}
	if _, err := r.js.PublishMsg(ctx, msg, jetstream.WithMsgID(rec.GetId())); err != nil {
		return fmt.Errorf("record the state of %s to %s (the delivery is queued): %w", d.GetMessageId(), d.GetEndpointId(), err)
	}
	return nil
}

// errEndpointDisabled answers resends to a disabled endpoint, which the
// delivery service would drop.
func errEndpointDisabled(id string) error {
	return &httpError{status: http.StatusConflict, code: "endpoint_disabled", message: fmt.Sprintf("endpoint %q is disabled; enable it before sending messages to it again", id)}
}

// resend queues message m to endpoint ep once more and returns the resend id.
func (r *replayer) resend(ctx context.Context, ep *configv1.Endpoint, m attemptlog.Message) (string, error) {
	if !ep.GetEnabled() {
		return "", errEndpointDisabled(ep.GetId())
	}
	ev, err := r.event(ctx, m)
	if errors.Is(err, attemptlog.ErrNotFound) {
		return "", fmt.Errorf("message %q is no longer retained: %w", m.ID, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	id := ids.New(resendPrefix)
	if err := r.publish(ctx, ev, m.Sequence, ep.GetId(), id); err != nil {
		return "", err
	}
	return id, nil
}

// recoveryRecord is the value of ph_recoveries.
type recoveryRecord struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	EndpointID string     `json:"endpoint_id"`
	Since      time.Time  `json:"since"`
	Until      *time.Time `json:"until,omitempty"`
	// IncludeRetrying is true when the request also sent deliveries still
	// retrying.
	IncludeRetrying bool `json:"include_retrying,omitempty"`
	// Done is false while the request is being carried out, or after it
	// failed part-way (an identical request finishes it).
	Done bool `json:"done"`
	// Count is how many deliveries it queued.
	Count int `json:"count"`
	// More is true when more failed deliveries matched than MaxRecover.
	More bool `json:"more"`
	// NextSince is where to start a request for the rest, when More.
	NextSince *time.Time `json:"next_since,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// recoveryKey is the key of a recover request: the endpoint and a hash of
// the tenant, endpoint, time range as given and whether it includes
// deliveries still retrying (a request without them hashes as before).
func recoveryKey(tenantID, endpointID string, since time.Time, until *time.Time, retrying bool) string {
	u := "open"
	if until != nil {
		u = strconv.FormatInt(until.UnixNano(), 10)
	}
	in := tenantID + "\x00" + endpointID + "\x00" + strconv.FormatInt(since.UnixNano(), 10) + "\x00" + u
	if retrying {
		in += "\x00retrying"
	}
	sum := sha256.Sum256([]byte(in))
	return endpointID + "." + hex.EncodeToString(sum[:16])
}

// recover sends again every failed delivery of ep whose failing attempt
// started in [since, until) (until nil: now), oldest first, at most
// MaxRecover; with retrying also those whose latest attempt left them
// retrying (their scheduled retry may still fire: the completion record of
// each resend and the webhook-id bound the duplicates). The same request again returns the first one's record and
// sends nothing; a delivery already sent again by an overlapping request is
// not sent again.
func (r *replayer) recover(ctx context.Context, alog *attemptlog.Store, ep *configv1.Endpoint, since time.Time, until *time.Time, retrying bool) (recoveryRecord, error) {
	if !ep.GetEnabled() {
		return recoveryRecord{}, errEndpointDisabled(ep.GetId())
	}
	tenantID := ep.GetTenantId()
	key := recoveryKey(tenantID, ep.GetId(), since, until, retrying)
	now := r.now().UTC()
	rec := recoveryRecord{ID: ids.New(recoverPrefix), TenantID: tenantID, EndpointID: ep.GetId(), Since: since, Until: until, IncludeRetrying: retrying, CreatedAt: now, UpdatedAt: now}
	rev, err := r.claim(ctx, key, &rec)
	if err != nil || rec.Done {
		return rec, err
	}

	end := now
	if until != nil && until.Before(end) {
		end = *until
	}
	failed, more, err := alog.RecoverableDeliveries(ctx, tenantID, ep.GetId(), since, end, MaxRecover, retrying)
	if err != nil {
		return rec, err
	}
	var (
		queued  atomic.Int64
		errs    []error
		errsMu  sync.Mutex
		g, gctx = errgroup.WithContext(ctx)
	)
	g.SetLimit(recoverConcurrency)
	for _, d := range failed {
		g.Go(func() error {
			sent, err := r.recoverOne(gctx, alog, tenantID, d, rec.ID)
			if err != nil {
				errsMu.Lock()
				errs = append(errs, err)
				errsMu.Unlock()
			} else if sent {
				queued.Add(1)
			}
			return nil
		})
	}
	_ = g.Wait()
	rec.Count += int(queued.Load())
	rec.More = more
	if more && len(failed) > 0 {
		next := failed[len(failed)-1].LastAttemptAt.Add(time.Nanosecond)
		rec.NextSince = &next
	}
	rec.Done = len(errs) == 0
	rec.UpdatedAt = r.now().UTC()
	if err := r.store(ctx, key, rev, &rec); err != nil {
		return rec, err
	}
	if len(errs) > 0 {
		return rec, &httpError{status: http.StatusServiceUnavailable, code: "unavailable",
			message: fmt.Sprintf("%d of %d deliveries could not be queued (%v); send the same request again to queue them (nothing is sent twice)", len(errs), len(failed), errs[0])}
	}
	return rec, nil
}

// claim reads the record of a recover request, or creates it in progress.
// It returns the revision to update; rec.Done means the request was carried
// out before (rec is then that record).
func (r *replayer) claim(ctx context.Context, key string, rec *recoveryRecord) (uint64, error) {
	for range conflictRetries {
		data, err := json.Marshal(rec)
		if err != nil {
			return 0, err
		}
		rev, err := r.recoveries.Create(ctx, key, data)
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("record recover request: %w", err)
		}
		e, err := r.recoveries.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // expired in between
		}
		if err != nil {
			return 0, fmt.Errorf("read recover request: %w", err)
		}
		var prev recoveryRecord
		if err := json.Unmarshal(e.Value(), &prev); err != nil {
			return 0, fmt.Errorf("decode recover request %s: %w", key, err)
		}
		if prev.Done {
			*rec = prev
			return e.Revision(), nil
		}
		if r.now().Sub(prev.UpdatedAt) < recoverStale {
			return 0, &httpError{status: http.StatusConflict, code: "conflict",
				message: fmt.Sprintf("the same recover request (%s) is in progress; try again shortly", prev.ID)}
		}
		// A request that died, or failed part-way: finish it under its id.
		prev.UpdatedAt = r.now().UTC()
		data, err = json.Marshal(prev)
		if err != nil {
			return 0, err
		}
		rev, err = r.recoveries.Update(ctx, key, data, e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("record recover request: %w", err)
		}
		*rec = prev
		return rev, nil
	}
	return 0, fmt.Errorf("recover request %s changed concurrently too often: %w", key, ErrConflict)
}

// store writes the outcome of a recover request.
func (r *replayer) store(ctx context.Context, key string, rev uint64, rec *recoveryRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := r.recoveries.Update(ctx, key, data, rev); err != nil {
		return fmt.Errorf("record recover request outcome: %w", err)
	}
	return nil
}

// recoverOne sends one failed delivery again, unless an earlier recover
// request did (its marker exists) or its event is gone, and reports whether
// it was queued.
func (r *replayer) recoverOne(ctx context.Context, alog *attemptlog.Store, tenantID string, d attemptlog.Delivery, recoverID string) (bool, error) {
	m, err := alog.Message(ctx, tenantID, d.MessageID)
	if errors.Is(err, attemptlog.ErrNotFound) {
		return false, nil // not indexed, or past the retention
	}
	if err != nil {
		return false, err
	}
	ev, err := r.event(ctx, m)
	if errors.Is(err, attemptlog.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	marker := d.EndpointID + "." + d.LastAttemptID
	if _, err := r.resent.Create(ctx, marker, []byte(recoverID)); errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("mark %s resent: %w", d.MessageID, err)
	}
	if err := r.publish(ctx, ev, m.Sequence, d.EndpointID, recoverID); err != nil {
		// Without the marker the next identical request tries again.
		if derr := r.resent.Delete(context.WithoutCancel(ctx), marker); derr != nil {
			err = errors.Join(err, derr)
		}
		return false, err
	}
	return true, nil
}
