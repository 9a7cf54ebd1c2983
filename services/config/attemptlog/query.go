package attemptlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Query selects a page of a list, newest first.
type Query struct {
	// After and Before bound the items' times: After ≤ t < Before; zero
	// means unbounded.
	After, Before time.Time
	// Cursor continues after the page it was returned with; "" starts at the
	// newest item.
	Cursor string
	// Limit is the page size, at least 1.
	Limit int
}

// Page is one page of a list, newest first. Next is the cursor of the
// older items that follow, "" when this is the last page; Prev is the
// cursor of the newer items before it, "" on the first page.
type Page[T any] struct {
	Items []T
	Next  string
	Prev  string
}

// ErrBadCursor is wrapped by errors for cursors the store did not make.
var ErrBadCursor = errBadCursor

// maxScanned bounds the items a filtered list visits for one page: a page
// of a rare filter can come back short, with Next (or Prev) continuing the
// scan where it stopped.
const maxScanned = 10000

// scan is one list query over a table and scope, newest first.
type scan struct {
	table byte
	scope []string
	// suffix follows the scope in the key (the outcome or state byte).
	suffix []byte
	q      Query
	// floor is a time no item of the scope is earlier than (the scope's
	// creation), zero when unknown.
	floor time.Time
	// keep, when set, filters the items by value.
	keep func(val []byte) bool
}

// item is a listed key's sort key and value.
type item struct{ sort, val []byte }

// scanned is what one scan collected, in the direction it ran: kept items,
// and when it stopped early the sort key to continue from (the last item
// kept of a full page, or the last visited when maxScanned ended it).
type scanned struct {
	items []item
	stop  []byte
}

// collect runs one scan in direction dir from cursor (nil: the newest
// end) and returns up to q.Limit items. Buckets are visited in time order
// of the direction, each with its own bounded iterator; items in a bucket
// are exactly those of its time span, so items come in time order across
// buckets.
func (s *Store) collect(ctx context.Context, sc scan, dir byte, cursor []byte, cursorTime time.Time) (scanned, error) {
	var out scanned
	now := s.now()
	top := now.Add(skew)
	if !sc.q.Before.IsZero() && sc.q.Before.Before(top) {
		top = sc.q.Before
	}
	first := s.firstBucket(now)
	if !sc.q.After.IsZero() {
		first = max(first, s.bucketOf(sc.q.After))
	}
	if !sc.floor.IsZero() {
		first = max(first, s.bucketOf(sc.floor.Add(-skew)))
	}
	if cursor != nil && dir == cursorOlder && cursorTime.Before(top) {
		top = cursorTime
	}
	last := s.bucketOf(top)
	if cursor != nil && dir == cursorNewer {
		first = max(first, s.bucketOf(cursorTime))
	}
	visited := 0
	visit := func(k, v []byte, prefixLen int) (bool, error) {
		sort := k[prefixLen:]
		if len(out.items) == sc.q.Limit {
			return false, nil // one more exists: the page is full
		}
		if visited == maxScanned {
			return false, nil // out.stop is the last visited
		}
		visited++
		if sc.keep == nil || sc.keep(v) {
			out.items = append(out.items, item{sort: bytes.Clone(sort), val: bytes.Clone(v)})
			out.stop = out.items[len(out.items)-1].sort
		} else {
			out.stop = bytes.Clone(sort)
		}
		return true, nil
	}
	for i := int64(0); i <= int64(last)-int64(first); i++ {
		b := int64(last) - i
		if dir == cursorNewer {
			b = int64(first) + i
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		prefix := scopeKey(uint32(b), sc.table, sc.scope...)
		prefix = append(prefix, sc.suffix...)
		lower := prefix
		if !sc.q.Before.IsZero() {
			if k := earlierKey(sc.q.Before); k != nil {
				lower = append(bytes.Clone(prefix), k...)
			}
		}
		upper := prefixEnd(prefix)
		if !sc.q.After.IsZero() {
			if k := earlierKey(sc.q.After); k != nil {
				upper = append(bytes.Clone(prefix), k...)
			}
		}
		if cursor != nil {
			if dir == cursorOlder {
				if c := append(append(bytes.Clone(prefix), cursor...), 0); bytes.Compare(c, lower) > 0 {
					lower = c
				}
			} else if c := append(bytes.Clone(prefix), cursor...); upper == nil || bytes.Compare(c, upper) < 0 {
				upper = c
			}
		}
		if upper != nil && bytes.Compare(lower, upper) >= 0 {
			continue
		}
		f := func(k, v []byte) (bool, error) { return visit(k, v, len(prefix)) }
		var (
			full bool
			err  error
		)
		if dir == cursorNewer {
			full, err = s.iterateReverse(ctx, lower, upper, f)
		} else {
			full, err = s.iterate(ctx, lower, upper, f)
		}
		if err != nil {
			return out, err
		}
		if !full {
			return out, nil
		}
	}
	out.stop = nil
	return out, nil
}

// list runs one or more scans of the same shape (say, one per state) with
// q's cursor and merges them into one page, newest first, decoding values
// with decode.
func list[T any](ctx context.Context, s *Store, q Query, scans []scan, decode func([]byte) (T, error)) (Page[T], error) {
	var p Page[T]
	if q.Limit < 1 {
		return p, errors.New("attemptlog: limit must be at least 1")
	}
	dir := cursorOlder
	var (
		cursor     []byte
		cursorTime time.Time
	)
	if q.Cursor != "" {
		var err error
		dir, cursor, cursorTime, err = decodeCursor(q.Cursor)
		if err != nil {
			return p, err
		}
	}
	// before reports whether sort key a comes first in the scan direction.
	before := func(a, b []byte) bool {
		if dir == cursorNewer {
			return bytes.Compare(a, b) > 0
		}
		return bytes.Compare(a, b) < 0
	}
	var (
		merged []item
		bound  []byte // items past it are not known to be complete
	)
	for _, sc := range scans {
		sc.q = q
		if !keyable(sc.scope...) {
			continue
		}
		r, err := s.collect(ctx, sc, dir, cursor, cursorTime)
		if err != nil {
			return p, err
		}
		merged = append(merged, r.items...)
		if r.stop != nil && (bound == nil || before(r.stop, bound)) {
			bound = r.stop
		}
	}
	slices.SortFunc(merged, func(a, b item) int {
		if before(a.sort, b.sort) {
			return -1
		}
		if before(b.sort, a.sort) {
			return 1
		}
		return 0
	})
	var stop []byte
	n := 0
	for _, it := range merged {
		if bound != nil && before(bound, it.sort) {
			break
		}
		if n == q.Limit {
			break
		}
		n++
	}
	switch {
	case n > 0 && (n < len(merged) || (bound != nil && n == q.Limit)):
		stop = merged[n-1].sort
	case bound != nil:
		stop = bound
	}
	merged = merged[:n]
	if dir == cursorNewer {
		slices.Reverse(merged)
	}
	for _, it := range merged {
		v, err := decode(it.val)
		if err != nil {
			return p, err
		}
		p.Items = append(p.Items, v)
	}
	if dir == cursorOlder {
		if stop != nil {
			p.Next = encodeCursor(cursorOlder, stop)
		}
		switch {
		case cursor != nil && len(merged) > 0:
			p.Prev = encodeCursor(cursorNewer, merged[0].sort)
		case cursor != nil:
			p.Prev = encodeCursor(cursorNewer, cursor)
		}
	} else {
		if stop != nil {
			p.Prev = encodeCursor(cursorNewer, stop)
		}
		if len(merged) > 0 {
			p.Next = encodeCursor(cursorOlder, merged[len(merged)-1].sort)
		} else {
			p.Next = encodeCursor(cursorOlder, cursor)
		}
	}
	return p, nil
}

// iterate calls f for the keys in [lower, upper) in order while it returns
// true, and reports whether every key was visited.
func (s *Store) iterate(ctx context.Context, lower, upper []byte, f func(k, v []byte) (bool, error)) (bool, error) {
	return s.scan(ctx, lower, upper, false, f)
}

// iterateReverse is iterate from the last key back to the first.
func (s *Store) iterateReverse(ctx context.Context, lower, upper []byte, f func(k, v []byte) (bool, error)) (bool, error) {
	return s.scan(ctx, lower, upper, true, f)
}

// scan visits the keys in [lower, upper), backwards when reverse is true.
func (s *Store) scan(ctx context.Context, lower, upper []byte, reverse bool, f func(k, v []byte) (bool, error)) (bool, error) {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return false, fmt.Errorf("attemptlog: iterator: %w", err)
	}
	defer func() { _ = it.Close() }()
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for valid := first(); valid; valid = next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return false, fmt.Errorf("attemptlog: read: %w", err)
		}
		cont, err := f(it.Key(), v)
		if err != nil || !cont {
			return false, err
		}
	}
	if err := it.Error(); err != nil {
		return false, fmt.Errorf("attemptlog: read: %w", err)
	}
	return true, nil
}

// get reads one key; found is false when it does not exist.
func (s *Store) get(key []byte, f func(v []byte) error) (bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("attemptlog: read: %w", err)
	}
	defer func() { _ = closer.Close() }()
	return true, f(v)
}

// MessageQuery selects a tenant's messages.
type MessageQuery struct {
	Query
	// EventType, when set, keeps messages of that type only.
	EventType string
	// EventTypes, when not empty, keeps messages of one of these types
	// (EventType, when set, is one more).
	EventTypes []string
}

// types is the event types a query keeps, without repeats; nil keeps all.
func types(one string, many []string) []string {
	var out []string
	for _, t := range append([]string{one}, many...) {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// keepTypes is the value filter of event types ts over values decoded by
// decode (nil: none); values that do not decode are kept, for the caller's
// decode to report.
func keepTypes[T any](ts []string, decode func([]byte) (T, error), typeOf func(T) string) func([]byte) bool {
	if len(ts) == 0 {
		return nil
	}
	return func(v []byte) bool {
		x, err := decode(v)
		return err != nil || slices.Contains(ts, typeOf(x))
	}
}

// Messages lists a tenant's messages, newest first (by the time ingest
// accepted them). With event types, one scan per type of the tenant's
// by-type index, merged.
func (s *Store) Messages(ctx context.Context, tenant string, q MessageQuery) (Page[Message], error) {
	ts := types(q.EventType, q.EventTypes)
	if len(ts) == 0 {
		return list(ctx, s, q.Query, []scan{{table: tableTenantMessages, scope: []string{tenant}}}, decodeMessage)
	}
	scans := make([]scan, 0, len(ts))
	for _, t := range ts {
		scans = append(scans, scan{table: tableTypeMessages, scope: []string{tenant, t}})
	}
	return list(ctx, s, q.Query, scans, decodeMessage)
}

// MessagesByJob lists a tenant's messages whose data carries job id job
// (in the field Options.JobField), newest first.
func (s *Store) MessagesByJob(ctx context.Context, tenant, job string, q MessageQuery) (Page[Message], error) {
	sc := scan{table: tableJobMessages, scope: []string{tenant, job},
		keep: keepTypes(types(q.EventType, q.EventTypes), decodeMessage, func(m Message) string { return m.EventType })}
	return list(ctx, s, q.Query, []scan{sc}, decodeMessage)
}

// candidateBuckets are the buckets that can hold an item keyed by id: the
// one of the time in the id, and for ids without one every retained bucket.
func (s *Store) candidateBuckets(id string, back time.Duration) []uint32 {
	now := s.now()
	first := s.firstBucket(now)
	if t, ok := idTime(id); ok {
		var out []uint32
		for b := int64(s.bucketOf(t)); b >= int64(s.bucketOf(t.Add(-back))) && b >= int64(first); b-- {
			out = append(out, uint32(b))
		}
		return out
	}
	var out []uint32
	for b := int64(s.bucketOf(now.Add(skew))); b >= int64(first); b-- {
		out = append(out, uint32(b))
	}
	return out
}

// Message returns a tenant's message.
func (s *Store) Message(_ context.Context, tenant, id string) (Message, error) {
	var m Message
	if !keyable(tenant, id) {
		return m, ErrNotFound
	}
	for _, b := range s.candidateBuckets(id, 0) {
		found, err := s.get(scopeKey(b, tableMessage, tenant, id), func(v []byte) error {
			var err error
			m, err = decodeMessage(v)
			return err
		})
		if err != nil || found {
			return m, err
		}
	}
	return m, ErrNotFound
}

// MessageDeliveries returns the status of every delivery of a tenant's
// message that has had an attempt, by endpoint id (at most limit).
func (s *Store) MessageDeliveries(ctx context.Context, tenant, msgID string, limit int) ([]Delivery, error) {
	var out []Delivery
	if !keyable(tenant, msgID) {
		return out, nil
	}
	for _, b := range s.candidateBuckets(msgID, 0) {
		prefix := scopeKey(b, tableDelivery, tenant, msgID)
		_, err := s.iterate(ctx, prefix, prefixEnd(prefix), func(_, v []byte) (bool, error) {
			d, err := decodeDelivery(v)
			if err != nil {
				return false, err
			}
			out = append(out, d)
			return len(out) < limit, nil
		})
		if err != nil {
			return nil, err
		}
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

// Delivery returns the status of a tenant's message's delivery to an
// endpoint, ErrNotFound when it has had no attempt.
func (s *Store) Delivery(_ context.Context, tenant, msgID, endpointID string) (Delivery, error) {
	var d Delivery
	if !keyable(tenant, msgID, endpointID) {
		return d, ErrNotFound
	}
	for _, b := range s.candidateBuckets(msgID, 0) {
		found, err := s.get(scopeKey(b, tableDelivery, tenant, msgID, endpointID), func(v []byte) error {
			var err error
			d, err = decodeDelivery(v)
			return err
		})
		if err != nil || found {
			return d, err
		}
	}
	return d, ErrNotFound
}

// AttemptQuery selects attempts.
type AttemptQuery struct {
	Query
	// Outcome, when not OUTCOME_UNSPECIFIED, keeps attempts of that outcome
	// only (endpoint lists).
	Outcome eventv1.Outcome
}

// EndpointAttempts lists the attempts to a tenant's endpoint, newest first
// (by start time).
func (s *Store) EndpointAttempts(ctx context.Context, tenant, endpointID string, q AttemptQuery) (Page[AttemptSummary], error) {
	sc := scan{table: tableEndpointAttempt, scope: []string{tenant, endpointID}, q: q.Query, floor: idFloor(endpointID)}
	if q.Outcome != eventv1.Outcome_OUTCOME_UNSPECIFIED {
		sc.table = tableOutcomeAttempt
		sc.suffix = []byte{byte(q.Outcome)}
	}
	return s.attempts(ctx, sc)
}

// MessageAttempts lists the attempts of a tenant's message, to every
// endpoint, newest first.
func (s *Store) MessageAttempts(ctx context.Context, tenant, msgID string, q Query) (Page[AttemptSummary], error) {
	return s.attempts(ctx, scan{table: tableMessageAttempt, scope: []string{tenant, msgID}, q: q, floor: idFloor(msgID)})
}

func (s *Store) attempts(ctx context.Context, sc scan) (Page[AttemptSummary], error) {
	return list(ctx, s, sc.q, []scan{sc}, decodeSummary)
}

// DeliveryQuery selects delivery statuses.
type DeliveryQuery struct {
	Query
	// States, when not empty, keeps deliveries in one of these states.
	States []eventv1.DeliveryState
	// EventType, when set, keeps deliveries of messages of that type.
	EventType string
	// EventTypes, when not empty, keeps deliveries of messages of one of
	// these types (EventType, when set, is one more). No index serves a
	// type with a state: items are filtered by value, at most maxScanned
	// visited per page.
	EventTypes []string
}

// keepType is the value filter of q's event types (nil: none).
func (q DeliveryQuery) keepType() func([]byte) bool {
	return keepTypes(types(q.EventType, q.EventTypes), decodeDelivery, func(d Delivery) string { return d.EventType })
}

// DeliveryCursor is the iterator that continues a list of delivery
// statuses after d: to older items when older is true, else to newer ones.
// perDelivery is true for TenantDeliveries (an item per delivery), false
// for EndpointDeliveries (an item per message). It lets a caller that
// groups items stop a page at any item it took.
func DeliveryCursor(d Delivery, older, perDelivery bool) string {
	dir := cursorNewer
	if older {
		dir = cursorOlder
	}
	id := d.MessageID
	if perDelivery {
		id += "." + d.EndpointID
	}
	return encodeCursor(dir, sortKey(d.MessageCreatedAt, id))
}

// CursorOlder reports whether iterator c continues to older items (as
// the iterator of a page does) rather than newer ones (prev_iterator);
// "" starts at the newest, so it is older.
func CursorOlder(c string) bool {
	if c == "" {
		return true
	}
	dir, _, _, err := decodeCursor(c)
	return err != nil || dir == cursorOlder
}

// EndpointDeliveries lists the status of the deliveries of a tenant's
// messages to an endpoint (each with a state decided by fanout, delivery or
// an attempt), newest message first.
func (s *Store) EndpointDeliveries(ctx context.Context, tenant, endpointID string, q DeliveryQuery) (Page[Delivery], error) {
	if len(q.States) == 0 {
		return list(ctx, s, q.Query, []scan{{table: tableEndpointMessage, scope: []string{tenant, endpointID}, keep: q.keepType()}}, decodeDelivery)
	}
	scans := make([]scan, 0, len(q.States))
	for _, st := range uniqueStates(q.States) {
		scans = append(scans, scan{table: tableEndpointState, scope: []string{tenant, endpointID}, suffix: []byte{byte(st)}, keep: q.keepType()})
	}
	return list(ctx, s, q.Query, scans, decodeDelivery)
}

// TenantDeliveries lists the status of a tenant's deliveries in one of
// q.States (required) to every endpoint, newest message first; a message
// delivered to several endpoints has one item per endpoint, next to each
// other.
func (s *Store) TenantDeliveries(ctx context.Context, tenant string, q DeliveryQuery) (Page[Delivery], error) {
	if len(q.States) == 0 {
		return Page[Delivery]{}, errors.New("attemptlog: TenantDeliveries needs at least one state")
	}
	scans := make([]scan, 0, len(q.States))
	for _, st := range uniqueStates(q.States) {
		scans = append(scans, scan{table: tableTenantState, scope: []string{tenant}, suffix: []byte{byte(st)}, keep: q.keepType()})
	}
	return list(ctx, s, q.Query, scans, decodeDelivery)
}

// uniqueStates is states without repeats, in order.
func uniqueStates(states []eventv1.DeliveryState) []eventv1.DeliveryState {
	var out []eventv1.DeliveryState
	for _, st := range states {
		if !slices.Contains(out, st) {
			out = append(out, st)
		}
	}
	return out
}

// maxAttemptSpan is how much earlier than the time in its id an attempt
// can have started (the id is made when the attempt ends; attempts time out
// after at most 30 s).
const maxAttemptSpan = 5 * time.Minute

// AttemptSequence returns the sequence in ATTEMPTS of a tenant's attempt;
// LoadAttempt reads it.
func (s *Store) AttemptSequence(_ context.Context, tenant, id string) (uint64, error) {
	if !keyable(tenant, id) {
		return 0, ErrNotFound
	}
	for _, b := range s.candidateBuckets(id, maxAttemptSpan) {
		var seq uint64
		found, err := s.get(scopeKey(b, tableAttempt, tenant, id), func(v []byte) error {
			var err error
			seq, err = decodeUint(v)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("attemptlog: attempt %s: %w", id, err)
		}
		if found {
			return seq, nil
		}
	}
	return 0, ErrNotFound
}

// EndpointStats returns an endpoint's attempt counts for the hours hours
// up to and including the current one, oldest first; hours without attempts
// count zero.
func (s *Store) EndpointStats(_ context.Context, tenant, endpointID string, hours int) ([]HourStats, error) {
	out := make([]HourStats, hours)
	end := s.now().UTC().Truncate(time.Hour)
	for i := range out {
		h := end.Add(-time.Duration(hours-1-i) * time.Hour)
		out[i].Hour = h
		if !keyable(tenant, endpointID) {
			continue
		}
		_, err := s.get(statsKey(s.bucketOf(h), tenant, endpointID, h), func(v []byte) error {
			var err error
			out[i].Success, out[i].Failure, err = decodeStats(v)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// idFloor is the time in an id, the earliest time of items about the
// object it names (less the clock skew allowed, which run applies); zero
// when the id has no time.
func idFloor(id string) time.Time {
	t, ok := idTime(id)
	if !ok {
		return time.Time{}
	}
	return t
}

// FailedDeliveries returns the deliveries to a tenant's endpoint whose
// latest attempt left them exhausted or dropped and started in [since,
// until), oldest first, at most limit; more reports whether others follow.
func (s *Store) FailedDeliveries(ctx context.Context, tenant, endpointID string, since, until time.Time, limit int) (out []Delivery, more bool, err error) {
	return s.RecoverableDeliveries(ctx, tenant, endpointID, since, until, limit, false)
}

// RecoverableDeliveries is FailedDeliveries, and with retrying also the
// deliveries whose latest attempt left them retrying. Those are found by
// scanning the endpoint's attempts in the range (the failed table holds
// only exhausted and dropped ones).
func (s *Store) RecoverableDeliveries(ctx context.Context, tenant, endpointID string, since, until time.Time, limit int, retrying bool) (out []Delivery, more bool, err error) {
	if !keyable(tenant, endpointID) || !since.Before(until) {
		return nil, false, nil
	}
	table := tableFailed
	if retrying {
		table = tableEndpointAttempt
	}
	first := max(s.bucketOf(since), s.firstBucket(s.now()))
	last := s.bucketOf(until)
	seen := map[string]bool{}
	for b := first; b <= last; b++ {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		prefix := scopeKey(b, table, tenant, endpointID)
		lower := append(bytes.Clone(prefix), earlierKey(until)...)
		upper := prefixEnd(prefix)
		if k := earlierKey(since); k != nil {
			upper = append(bytes.Clone(prefix), k...)
		}
		if bytes.Compare(lower, upper) >= 0 {
			continue
		}
		full, err := s.iterateReverse(ctx, lower, upper, func(_, v []byte) (bool, error) {
			var ref failedRef
			if retrying {
				sum, err := decodeSummary(v)
				if err != nil {
					return false, err
				}
				if !Failed(sum.State) && sum.State != eventv1.DeliveryState_DELIVERY_STATE_RETRYING {
					return true, nil
				}
				ref = failedRef{MessageID: sum.MessageID, AttemptID: sum.ID}
			} else if ref, err = decodeFailed(v); err != nil {
				return false, err
			}
			if seen[ref.MessageID] {
				return true, nil
			}
			d, err := s.Delivery(ctx, tenant, ref.MessageID, endpointID)
			if errors.Is(err, ErrNotFound) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			if d.LastAttemptID != ref.AttemptID {
				return true, nil // attempted again since
			}
			seen[ref.MessageID] = true
			if !Failed(d.State) && (!retrying || d.State != eventv1.DeliveryState_DELIVERY_STATE_RETRYING) {
				return true, nil
			}
			if len(out) == limit {
				more = true
				return false, nil
			}
			out = append(out, d)
			return true, nil
		})
		if err != nil {
			return nil, false, err
		}
		if !full {
			return out, more, nil
		}
		if b == 1<<32-1 {
			break
		}
	}
	return out, false, nil
}

// Failed reports whether a delivery in state st has failed for good: its
// last attempt exhausted the schedule, or it was dropped.
func Failed(st eventv1.DeliveryState) bool {
	return st == eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED || st == eventv1.DeliveryState_DELIVERY_STATE_DROPPED
}
