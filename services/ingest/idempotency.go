package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// IdempotencyBucket is the JetStream KV bucket holding idempotency records.
const IdempotencyBucket = "ph_ingest_idem"

// Record states.
const (
	statePending = "pending"
	stateDone    = "done"
)

// errCorruptRecord reports a record that is not one ingest wrote: retrying
// cannot help until it expires or an operator removes it.
var errCorruptRecord = errors.New("idempotency record is corrupt")

// idemRecord is what the bucket holds per (tenant, key): the message id the
// key was given, whether its event is known to be stored, and the event's
// timestamp, so a retry that re-publishes sends the same envelope.
type idemRecord struct {
	MessageID   string `json:"message_id"`
	State       string `json:"state"`
	TimestampMS int64  `json:"timestamp_ms"`
}

// idemClaim is the record of a key after claim: created when this call
// stored it, otherwise the record found.
type idemClaim struct {
	idemRecord
	key      string
	revision uint64
	created  bool
}

// idemStore remembers idempotency keys in a KV bucket whose max age is the
// key's lifetime. nc is the connection done marks are published on.
type idemStore struct {
	kv jetstream.KeyValue
	nc *nats.Conn
}

// ensureIdemStore creates or updates the bucket.
func ensureIdemStore(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (*idemStore, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      IdempotencyBucket,
		Description: "pulsehooks ingest idempotency keys: tenant + sha256(key) -> message id",
		TTL:         ttl,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure key-value bucket %s: %w", IdempotencyBucket, err)
	}
	return &idemStore{kv: kv, nc: js.Conn()}, nil
}

// claim stores rec as the pending record of (tenant, key) unless the key has
// a record already, which it then returns. Create is atomic: of concurrent
// claims, exactly one creates.
func (s *idemStore) claim(ctx context.Context, tenantID, key string, rec idemRecord) (idemClaim, error) {
	k := idemKey(tenantID, key)
	value, err := json.Marshal(rec)
	if err != nil {
		return idemClaim{}, fmt.Errorf("encode idempotency record: %w", err)
	}
	// A record found by Create may expire before Get reads it; then create
	// again. Two rounds suffice unless the bucket is being purged.
	for range 3 {
		rev, err := s.kv.Create(ctx, k, value)
		if err == nil {
			return idemClaim{idemRecord: rec, key: k, revision: rev, created: true}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return idemClaim{}, fmt.Errorf("create idempotency record %s: %w", k, err)
		}
		entry, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return idemClaim{}, fmt.Errorf("read idempotency record %s: %w", k, err)
		}
		var found idemRecord
		if err := json.Unmarshal(entry.Value(), &found); err != nil || found.MessageID == "" {
			return idemClaim{}, fmt.Errorf("%w: %s holds %q", errCorruptRecord, k, entry.Value())
		}
		return idemClaim{idemRecord: found, key: k, revision: entry.Revision()}, nil
	}
	return idemClaim{}, fmt.Errorf("claim idempotency record %s: it keeps disappearing", k)
}

// markDone records that c's event is stored: the record's update, published
// without waiting for the stream's ack (no reply subject, so the stream sends
// none), on the revision the claim holds. It saves the publisher a JetStream
// round trip and nats-server an ack per event. A mark that is not stored —
// another publisher of the same key updated the record first (it did the
// same), or the bucket could not take it — leaves the record pending, which
// is what a publisher that died before marking leaves: a retry of the key
// republishes the same message id, which the duplicate window drops. Only a
// publish that cannot leave the client (the connection is closed or
// reconnecting) is an error.
func (s *idemStore) markDone(c idemClaim) error {
	rec := c.idemRecord
	rec.State = stateDone
	value, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode idempotency record: %w", err)
	}
	msg := &nats.Msg{Subject: kvSubjectPrefix + c.key, Data: value, Header: nats.Header{}}
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(c.revision, 10))
	if err := s.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("mark idempotency record %s done: %w", c.key, err)
	}
	return nil
}

// kvSubjectPrefix is the subject prefix of the bucket's keys.
const kvSubjectPrefix = "$KV." + IdempotencyBucket + "."

// idemKey is the bucket key of (tenant, key): the tenant id (hex-encoded
// after '=' when it holds characters keys cannot), a dot, and the SHA-256 of
// the key, so keys of any content and length map to valid bucket keys.
func idemKey(tenantID, key string) string {
	sum := sha256.Sum256([]byte(key))
	prefix := tenantID
	if !plainTenant(tenantID) {
		prefix = "=" + hex.EncodeToString([]byte(tenantID))
	}
	return prefix + "." + hex.EncodeToString(sum[:])
}

// plainTenant reports whether a tenant id is used as it is in keys: letters,
// digits, '_' and '-'. It excludes '=', which starts the encoded form of
// every other id, so the two never collide.
func plainTenant(id string) bool {
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return id != ""
}
