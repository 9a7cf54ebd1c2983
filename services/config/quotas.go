package config

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// Defaults of the deployment's per-tenant quotas (Config.Quotas).
const (
	// DefaultQuotaEndpoints is how many endpoints a tenant may have.
	DefaultQuotaEndpoints = 100
	// DefaultQuotaHeadersPerEndpoint is how many custom headers one
	// endpoint may have.
	DefaultQuotaHeadersPerEndpoint = 32
	// NoQuota in a Quotas field means no limit.
	NoQuota = -1
	// maxQuotaOverride bounds a tenant's override of any quota.
	maxQuotaOverride = 1_000_000
)

// BucketUsage is the KV bucket of per-tenant usage counters.
const BucketUsage = "ph_usage"

// Timing of the endpoint counter.
const (
	// pendingStale is the age after which an endpoint create or delete
	// that reserved its change in the counter but never settled it is
	// resolved by looking at the endpoints bucket. It is well above
	// pendingDeadline, the time the store write itself may take, so an
	// operation still in progress is never resolved under it.
	pendingStale = time.Minute
	// pendingDeadline bounds the endpoint write between reserve and settle.
	pendingDeadline = 20 * time.Second
	// usageAttempts bounds the compare-and-set attempts on one counter; 500
	// concurrent creates of one tenant settle well within it.
	usageAttempts = 2000
)

// ErrQuotaExceeded is wrapped by errors for writes a tenant's quota refuses.
var ErrQuotaExceeded = errors.New("quota exceeded")

// Quotas are the deployment's per-tenant limits of the config service; a
// tenant's record can override each (TenantQuotas). Zero means the default;
// NoQuota (-1) means no limit.
type Quotas struct {
	// Endpoints is how many endpoints one tenant may have (default 100,
	// PULSEHOOKS_QUOTA_ENDPOINTS).
	Endpoints int
	// HeadersPerEndpoint is how many custom headers one endpoint may have
	// (default 32, PULSEHOOKS_QUOTA_HEADERS_PER_ENDPOINT).
	HeadersPerEndpoint int
}

// withDefaults fills zero fields and checks the others.
func (q Quotas) withDefaults() (Quotas, error) {
	var errs []error
	fill := func(name string, v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < NoQuota:
			errs = append(errs, fmt.Errorf("%s is %d, want a positive number or -1 for no limit", name, *v))
		}
	}
	fill("Quotas.Endpoints (PULSEHOOKS_QUOTA_ENDPOINTS)", &q.Endpoints, DefaultQuotaEndpoints)
	fill("Quotas.HeadersPerEndpoint (PULSEHOOKS_QUOTA_HEADERS_PER_ENDPOINT)", &q.HeadersPerEndpoint, DefaultQuotaHeadersPerEndpoint)
	return q, errors.Join(errs...)
}

// TenantQuotas are an operator's overrides of the deployment's quotas for
// one tenant. A nil field takes the deployment default; a set one is
// between 1 and 1,000,000. The ingest fields are enforced by ingest, which
// learns them from the Watch stream.
type TenantQuotas struct {
	Endpoints             *int `json:"endpoints,omitempty"`
	HeadersPerEndpoint    *int `json:"headers_per_endpoint,omitempty"`
	IngestEventsPerSecond *int `json:"ingest_events_per_second,omitempty"`
	IngestBurst           *int `json:"ingest_burst,omitempty"`
}

// check validates every set field.
func (q *TenantQuotas) check() error {
	if q == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    *int
	}{
		{"quotas.endpoints", q.Endpoints},
		{"quotas.headers_per_endpoint", q.HeadersPerEndpoint},
		{"quotas.ingest_events_per_second", q.IngestEventsPerSecond},
		{"quotas.ingest_burst", q.IngestBurst},
	} {
		if f.v != nil && (*f.v < 1 || *f.v > maxQuotaOverride) {
			return invalid(f.name, "must be between 1 and %d, or left out for the deployment default", maxQuotaOverride)
		}
	}
	return nil
}

// orNil returns q, or nil when it sets nothing, so records without
// overrides carry no "quotas" field.
func (q *TenantQuotas) orNil() *TenantQuotas {
	if q == nil || (q.Endpoints == nil && q.HeadersPerEndpoint == nil && q.IngestEventsPerSecond == nil && q.IngestBurst == nil) {
		return nil
	}
	return q
}

// proto returns the overrides as the Watch stream carries them.
func (q *TenantQuotas) proto() *configv1.TenantQuotas {
	if q.orNil() == nil {
		return nil
	}
	u := func(v *int) *uint32 {
		if v == nil {
			return nil
		}
		n := uint32(*v)
		return &n
	}
	return &configv1.TenantQuotas{
		Endpoints:             u(q.Endpoints),
		HeadersPerEndpoint:    u(q.HeadersPerEndpoint),
		IngestEventsPerSecond: u(q.IngestEventsPerSecond),
		IngestBurst:           u(q.IngestBurst),
	}
}

// tenantQuotasFromProto is the inverse of TenantQuotas.proto.
func tenantQuotasFromProto(p *configv1.TenantQuotas) *TenantQuotas {
	if p == nil {
		return nil
	}
	i := func(v *uint32) *int {
		if v == nil {
			return nil
		}
		n := int(*v)
		return &n
	}
	q := &TenantQuotas{
		Endpoints:             i(p.Endpoints),
		HeadersPerEndpoint:    i(p.HeadersPerEndpoint),
		IngestEventsPerSecond: i(p.IngestEventsPerSecond),
		IngestBurst:           i(p.IngestBurst),
	}
	return q.orNil()
}

// limit is the override when set, else the deployment default.
func limit(override *int, def int) int {
	if override != nil {
		return *override
	}
	return def
}

// endpointLimit is the tenant's endpoint quota; NoQuota means none.
func (s *Store) endpointLimit(t Tenant) int {
	if t.Quotas != nil {
		return limit(t.Quotas.Endpoints, s.quotas.Endpoints)
	}
	return s.quotas.Endpoints
}

// checkHeaderQuota refuses an endpoint with more custom headers than the
// tenant's quota, with a validation error on "headers".
func (s *Store) checkHeaderQuota(t Tenant, headers map[string]string) error {
	quota := s.quotas.HeadersPerEndpoint
	if t.Quotas != nil {
		quota = limit(t.Quotas.HeadersPerEndpoint, quota)
	}
	if quota != NoQuota && len(headers) > quota {
		return invalid("headers", "has %d headers; tenant %s is limited to %d headers per endpoint", len(headers), t.ID, quota)
	}
	return nil
}

// SetTenantQuotas replaces a tenant's quota overrides (nil or empty clears
// them all, so every quota takes the deployment default) and returns the
// tenant. Lowering a quota below the tenant's usage removes nothing; it
// only refuses new endpoints or headers.
func (s *Store) SetTenantQuotas(ctx context.Context, id string, q *TenantQuotas) (Tenant, error) {
	if err := q.check(); err != nil {
		return Tenant{}, err
	}
	rec, err := s.updateTenant(ctx, id, "quotas", func(rec *tenantRecord) { rec.Quotas = q.orNil() })
	if err != nil {
		return Tenant{}, err
	}
	s.log.InfoContext(ctx, "tenant quotas set", "tenant_id", id, "quotas", rec.Quotas)
	return Tenant(rec), nil
}

// updateTenant applies set to tenant id's record with compare-and-set
// (retried on a conflicting write), waits until the store's watch has
// applied it, and returns the record written; what names the change in
// errors.
func (s *Store) updateTenant(ctx context.Context, id, what string, set func(*tenantRecord)) (tenantRecord, error) {
	if !tenantIDPattern.MatchString(id) {
		return tenantRecord{}, notFound("tenant", id)
	}
	var (
		rec tenantRecord
		rev uint64
	)
	err := retryOnConflict(ctx, "update tenant "+id, func() error {
		rec = tenantRecord{}
		cur, found, err := getJSON(ctx, s.tenants, id, &rec)
		if err != nil {
			return err
		}
		if !found {
			return notFound("tenant", id)
		}
		set(&rec)
		data, err := marshal("tenant", rec)
		if err != nil {
			return err
		}
		rev, err = s.tenants.kv.Update(ctx, id, data, cur)
		return err
	})
	if err != nil {
		return tenantRecord{}, fmt.Errorf("set %s of tenant %s: %w", what, id, err)
	}
	s.awaitApplied(ctx, s.tenants, rev)
	return rec, nil
}

// quotaError is a write refused by a quota: answered 422 quota_exceeded,
// and errors.Is(err, ErrQuotaExceeded).
type quotaError struct{ he *httpError }

func (e *quotaError) Error() string { return e.he.message }

func (e *quotaError) Unwrap() []error { return []error{e.he, ErrQuotaExceeded} }

func quotaExceeded(format string, args ...any) error {
	return &quotaError{he: &httpError{status: http.StatusUnprocessableEntity, code: "quota_exceeded", message: fmt.Sprintf(format, args...)}}
}

// The endpoint counter.
//
// Replicas share nothing but KV, so the endpoint quota is held by one record
// per tenant in ph_usage, key "endpoints.<tenant>", changed only by
// compare-and-set on its revision: {"count": n, "pending": {token: {…}}}.
// count is the number of endpoints whose create settled and whose delete
// did not; pending holds the creates and deletes in progress.
//
//   - Create: reserve (CAS: refuse when count + pending creates ≥ quota,
//     else add a pending create), write the endpoint, settle (CAS: remove
//     the pending create and count it). A refused create writes nothing.
//   - Delete: read the endpoint (404 if missing), mark a pending delete,
//     delete the endpoint at its revision, settle (count - 1, and drop every
//     other pending delete of that endpoint: only one delete can succeed).
//
// A crash (or a store error) between the steps leaves a pending entry. A
// pending create still holds its slot, so the quota is never exceeded; an
// entry older than pendingStale is resolved by the next reserve or mark of
// the tenant, from what the endpoints bucket holds: an endpoint that exists
// is counted, a deleted one is uncounted. The endpoint write runs under
// pendingDeadline, well below pendingStale, so a live operation is not
// resolved under its feet. The first use of the counter (a tenant made
// before quotas existed) counts the tenant's endpoint keys.

// endpointUsage is the value of ph_usage "endpoints.<tenant>".
type endpointUsage struct {
	Count   int                     `json:"count"`
	Pending map[string]pendingWrite `json:"pending,omitempty"`
}

// pendingWrite is an endpoint create or delete in progress.
type pendingWrite struct {
	Endpoint string    `json:"endpoint"`
	Delete   bool      `json:"delete,omitempty"`
	At       time.Time `json:"at"`
}

func usageKey(tenantID string) string { return "endpoints." + tenantID }

// reserveEndpoint takes a slot for a new endpoint of the tenant, or refuses
// with a quota error. It returns the token to settle with.
func (s *Store) reserveEndpoint(ctx context.Context, t Tenant, endpointID string) (string, error) {
	quota := s.endpointLimit(t)
	token := pendingToken()
	err := s.updateUsage(ctx, t.ID, func(u *endpointUsage) error {
		if err := s.resolveStale(ctx, t.ID, u); err != nil {
			return err
		}
		if quota != NoQuota && u.Count+u.creates() >= quota {
			return quotaExceeded("tenant %s is limited to %d endpoints; delete one or ask the operator to raise the quota", t.ID, quota)
		}
		u.Pending[token] = pendingWrite{Endpoint: endpointID, At: s.now().UTC()}
		return nil
	})
	return token, err
}

// markEndpointDelete records a delete in progress of an existing endpoint.
func (s *Store) markEndpointDelete(ctx context.Context, tenantID, endpointID string) (string, error) {
	token := pendingToken()
	err := s.updateUsage(ctx, tenantID, func(u *endpointUsage) error {
		if err := s.resolveStale(ctx, tenantID, u); err != nil {
			return err
		}
		u.Pending[token] = pendingWrite{Endpoint: endpointID, Delete: true, At: s.now().UTC()}
		return nil
	})
	return token, err
}

// settleEndpoint ends a pending create or delete: applied says the
// endpoint write happened. An entry already resolved as stale changes
// nothing. A failure is logged: the entry is resolved later.
func (s *Store) settleEndpoint(ctx context.Context, tenantID, token string, applied bool) {
	err := s.updateUsage(ctx, tenantID, func(u *endpointUsage) error {
		p, ok := u.Pending[token]
		if !ok {
			return nil
		}
		delete(u.Pending, token)
		if applied {
			u.apply(p)
		}
		return nil
	})
	if err != nil {
		s.log.WarnContext(ctx, "endpoint counter not settled; it is resolved within minutes", "tenant_id", tenantID, "err", err)
	}
}

// creates counts the pending creates.
func (u *endpointUsage) creates() int {
	n := 0
	for _, p := range u.Pending {
		if !p.Delete {
			n++
		}
	}
	return n
}

// apply counts a create or delete that happened; a delete also drops the
// other pending deletes of its endpoint, which cannot have succeeded.
func (u *endpointUsage) apply(p pendingWrite) {
	if !p.Delete {
		u.Count++
		return
	}
	u.Count = max(u.Count-1, 0)
	for tok, o := range u.Pending {
		if o.Delete && o.Endpoint == p.Endpoint {
			delete(u.Pending, tok)
		}
	}
}

// resolveStale settles the pending entries older than pendingStale from
// what the endpoints bucket holds.
func (s *Store) resolveStale(ctx context.Context, tenantID string, u *endpointUsage) error {
	cutoff := s.now().Add(-pendingStale)
	for tok, p := range u.Pending {
		if p.At.After(cutoff) {
			continue
		}
		if _, still := u.Pending[tok]; !still {
			continue // dropped by an earlier apply in this loop
		}
		_, err := s.endpoints.kv.Get(ctx, endpointKey(tenantID, p.Endpoint))
		exists := err == nil
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
			return fmt.Errorf("resolve pending endpoint write %s: %w", p.Endpoint, err)
		}
		delete(u.Pending, tok)
		if exists != p.Delete {
			u.apply(p)
		}
		s.log.InfoContext(ctx, "stale endpoint counter entry resolved", "tenant_id", tenantID, "endpoint_id", p.Endpoint, "delete", p.Delete, "applied", exists != p.Delete)
	}
	return nil
}

// updateUsage changes the tenant's endpoint counter with f by
// compare-and-set, retrying with jittered back-off while other writers win;
// an error from f aborts without writing.
func (s *Store) updateUsage(ctx context.Context, tenantID string, f func(u *endpointUsage) error) error {
	// Writers in this replica take turns, so concurrent creates of one
	// tenant queue instead of failing each other's compare-and-set; the
	// compare-and-set still orders them against other replicas.
	turn := s.usageMu.of(tenantID)
	if err := turn.Acquire(ctx, 1); err != nil {
		return fmt.Errorf("wait to update the endpoint counter of tenant %s: %w", tenantID, err)
	}
	defer turn.Release(1)
	key := usageKey(tenantID)
	backoff := time.Millisecond
	for range usageAttempts {
		var u endpointUsage
		rev, found, err := getJSON(ctx, s.usage, key, &u)
		if err != nil {
			return err
		}
		if !found {
			if u.Count, err = s.countEndpointKeys(ctx, tenantID); err != nil {
				return err
			}
		}
		if u.Pending == nil {
			u.Pending = map[string]pendingWrite{}
		}
		if err := f(&u); err != nil {
			return err
		}
		data, err := marshal("endpoint usage", u)
		if err != nil {
			return err
		}
		if found {
			_, err = s.usage.kv.Update(ctx, key, data, rev)
		} else {
			_, err = s.usage.kv.Create(ctx, key, data)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("update %s/%s: %w", BucketUsage, key, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("update %s/%s: %w", BucketUsage, key, ctx.Err())
		case <-time.After(rand.N(backoff) + time.Millisecond):
		}
		backoff = min(2*backoff, 20*time.Millisecond)
	}
	return fmt.Errorf("update %s/%s: changed concurrently %d times, try again: %w", BucketUsage, key, usageAttempts, ErrConflict)
}

// usageLocks serialise this replica's counter updates per tenant, first
// come first served (semaphore.Weighted is FIFO) and giving up when the
// request ends; striped by a hash of the tenant id so their number is
// bounded. The zero value is ready to use.
type usageLocks struct {
	once    sync.Once
	stripes [64]*semaphore.Weighted
}

func (l *usageLocks) of(tenantID string) *semaphore.Weighted {
	l.once.Do(func() {
		for i := range l.stripes {
			l.stripes[i] = semaphore.NewWeighted(1)
		}
	})
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenantID))
	return l.stripes[h.Sum32()%uint32(len(l.stripes))]
}

// countEndpointKeys counts the tenant's endpoints in the store.
func (s *Store) countEndpointKeys(ctx context.Context, tenantID string) (int, error) {
	lister, err := s.endpoints.kv.ListKeysFiltered(ctx, tenantID+".*")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 0, nil
		}
		return 0, fmt.Errorf("count endpoints of tenant %s: %w", tenantID, err)
	}
	defer func() { _ = lister.Stop() }()
	n := 0
	for range lister.Keys() {
		n++
	}
	return n, nil
}

// pendingToken names one pending write.
func pendingToken() string {
	return fmt.Sprintf("%016x", rand.Uint64())
}

// beginEndpointDelete marks the delete of an endpoint in the counter, after
// checking that the endpoint exists (a missing one is not found).
func (s *Store) beginEndpointDelete(ctx context.Context, tenantID, endpointID string) (string, error) {
	var rec endpointRecord
	_, found, err := getJSON(ctx, s.endpoints, endpointKey(tenantID, endpointID), &rec)
	if err != nil {
		return "", err
	}
	if !found {
		return "", notFound("endpoint", endpointID)
	}
	return s.markEndpointDelete(ctx, tenantID, endpointID)
}

// endEndpointDelete settles a delete marked by beginEndpointDelete: done
// when the delete succeeded, dropped when it definitely did not (the
// endpoint was gone, or kept changing); any other error leaves the mark for
// resolveStale, since the delete may have happened.
func (s *Store) endEndpointDelete(ctx context.Context, tenantID, token string, err error) {
	switch {
	case err == nil:
		s.settleEndpoint(ctx, tenantID, token, true)
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict):
		s.settleEndpoint(ctx, tenantID, token, false)
	}
}
