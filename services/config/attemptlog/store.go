// Package attemptlog is the query store of the attempt log: an embedded
// pebble database, fed by an Indexer from the EVENTS and ATTEMPTS streams
// (the source of truth), that answers the portal's and the REST API's
// questions — a tenant's messages, a message's deliveries and attempts, an
// endpoint's attempts, messages and hourly statistics — newest first with
// cursor pagination, and removes data older than the retention.
//
// Each config replica keeps its own store in a local directory. It holds the
// stream positions it has indexed in the same database, written in the same
// batch as the data, so a restart resumes where it stopped and an empty
// directory is rebuilt from the streams.
package attemptlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Defaults of Options.
const (
	DefaultRetention     = 30 * 24 * time.Hour
	DefaultCacheBytes    = 64 << 20
	DefaultMemTableBytes = 16 << 20
	// maxOpenFiles bounds pebble's table cache (file descriptors and
	// the readers' memory).
	maxOpenFiles = 500
	// layoutVersion changes when the key layout does; a store of another
	// layout is emptied and rebuilt from the streams.
	layoutVersion = 2
	// minBucketWidth and maxBucketWidth bound the time buckets: retention
	// is applied a bucket at a time, so a bucket is at most 1/30 of it.
	minBucketWidth = time.Minute
	maxBucketWidth = 24 * time.Hour
	// skew is how far ahead of this replica's clock a time may be (clocks of
	// other hosts), for choosing the buckets a query looks at.
	skew = 24 * time.Hour
)

// ErrNotFound is returned for ids the log does not hold for the tenant
// (unknown, another tenant's, or removed by retention).
var ErrNotFound = errors.New("not found")

// Options configure a Store.
type Options struct {
	// Dir is the directory of the database; created when missing.
	Dir string
	// Retention is how long messages and attempts are kept; default 30 days.
	// Data is removed a time bucket (1/30 of the retention, at most a day)
	// at a time, so it is kept up to one bucket longer.
	Retention time.Duration
	// CacheBytes is the block cache; default 64 MiB.
	CacheBytes int64
	// MemTableBytes is the size of one memtable; default 16 MiB (at most
	// four are held at once).
	MemTableBytes uint64
	// Logger receives pebble's warnings and the store's messages.
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// JobField is the field of an event's data whose value (a string or a
	// number) messages can be found by (MessagesByJob); default
	// DefaultJobField. It is read when an event is indexed: a changed
	// field applies to events indexed after the change.
	JobField string
}

// DefaultJobField is the default Options.JobField.
const DefaultJobField = "job_id"

// Store is the attempt log's database. It is safe for concurrent use.
type Store struct {
	db        *pebble.DB
	retention time.Duration
	width     time.Duration
	now       func() time.Time
	log       *slog.Logger

	// jobField is the data field whose value messages are found by.
	jobField string
	// deliveryMu is held by a batch from its first read of a delivery
	// status to its commit: the ATTEMPTS and STATES indexers change the
	// same statuses.
	deliveryMu sync.Mutex

	mu         sync.Mutex
	sweptBelow uint32
	closed     bool
}

// Open opens (creating if needed) the store in o.Dir. A store written with
// another layout or bucket width (a changed retention) is emptied, so the
// indexer rebuilds it from the streams.
func Open(o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("attemptlog: Options.Dir is required")
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.Retention < time.Hour {
		return nil, fmt.Errorf("attemptlog: retention must be at least 1h, got %v", o.Retention)
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = DefaultMemTableBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.JobField == "" {
		o.JobField = DefaultJobField
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("attemptlog: create %s: %w", o.Dir, err)
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                o.MemTableBytes,
		MemTableStopWritesThreshold: 4,
		MaxOpenFiles:                maxOpenFiles,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       24,
		LBaseMaxBytes:               64 << 20,
		Logger:                      pebbleLogger{o.Logger},
		FormatMajorVersion:          pebble.FormatNewest,
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.CompactionConcurrencyRange = func() (int, int) { return 1, 2 }
	db, err := pebble.Open(o.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("attemptlog: open %s: %w", o.Dir, err)
	}
	s := &Store{db: db, retention: o.Retention, width: bucketWidth(o.Retention), now: o.Now, log: o.Logger, jobField: o.JobField}
	if err := s.checkLayout(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// bucketWidth is 1/30 of the retention, in whole minutes, between a minute
// and a day.
func bucketWidth(retention time.Duration) time.Duration {
	w := (retention / 30).Truncate(time.Minute)
	return min(max(w, minBucketWidth), maxBucketWidth)
}

// checkLayout empties a store of another layout and records this one.
func (s *Store) checkLayout() error {
	want := binary.BigEndian.AppendUint64([]byte{layoutVersion}, uint64(s.width))
	got, closer, err := s.db.Get(keyLayout)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("attemptlog: read layout: %w", err)
	default:
		same := string(got) == string(want)
		_ = closer.Close()
		if same {
			return nil
		}
		s.log.Warn("attempt log has another layout or bucket width (retention changed); rebuilding it from the streams")
	}
	b := s.db.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.DeleteRange([]byte{prefixData}, []byte{prefixMeta + 1}, nil)
	_ = b.Set(keyLayout, want, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("attemptlog: write layout: %w", err)
	}
	return nil
}

// Close closes the database; closing it again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("attemptlog: close: %w", err)
	}
	return nil
}

// Retention is how long data is kept.
func (s *Store) Retention() time.Duration { return s.retention }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// bucketOf is the bucket holding items at time t.
func (s *Store) bucketOf(t time.Time) uint32 {
	n := nanos(t) / uint64(s.width)
	return uint32(min(n, 1<<32-1))
}

// cutoff is the oldest time still kept at now.
func (s *Store) cutoff(now time.Time) time.Time { return now.Add(-s.retention) }

// firstBucket is the oldest bucket queries look at.
func (s *Store) firstBucket(now time.Time) uint32 { return s.bucketOf(s.cutoff(now)) }

// Position is the last sequence of stream indexed (0 when none).
func (s *Store) Position(stream string) (uint64, error) {
	key, err := positionKey(stream)
	if err != nil {
		return 0, err
	}
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("attemptlog: read position of %s: %w", stream, err)
	}
	defer func() { _ = closer.Close() }()
	return decodeUint(v)
}

// StreamCreated is the creation time of the stream whose position is
// stored (zero when unknown).
func (s *Store) StreamCreated(stream string) (time.Time, error) {
	key, err := createdKey(stream)
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	_, err = s.get(key, func(v []byte) error {
		n, err := decodeUint(v)
		t = time.Unix(0, int64(n)).UTC()
		return err
	})
	return t, err
}

// SetStreamPosition records that stream (created at created) is indexed up
// to pos; the indexer calls it when it starts over on a new stream.
func (s *Store) SetStreamPosition(stream string, created time.Time, pos uint64) error {
	pk, err := positionKey(stream)
	if err != nil {
		return err
	}
	ck, _ := createdKey(stream)
	b := s.db.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.Set(pk, encodeUint(pos), nil)
	_ = b.Set(ck, encodeUint(nanos(created)), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("attemptlog: set position of %s: %w", stream, err)
	}
	return nil
}

// Sweep removes the buckets entirely older than the retention. Pebble drops
// the covered files without rewriting them (delete-only compactions).
func (s *Store) Sweep() error {
	below := s.firstBucket(s.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || below <= s.sweptBelow {
		return nil
	}
	if err := s.db.DeleteRange(bucketPrefix(0), bucketPrefix(below), pebble.NoSync); err != nil {
		return fmt.Errorf("attemptlog: remove data older than %v: %w", s.retention, err)
	}
	s.sweptBelow = below
	s.log.Debug("attempt log: removed data older than the retention", "before", time.Unix(0, int64(uint64(below)*uint64(s.width))).UTC())
	return nil
}

// Stats describes the database for operators and benchmarks.
type Stats struct {
	// DiskBytes is the size of the live tables, WAL and manifest.
	DiskBytes uint64
	// CacheBytes is the block cache in use.
	CacheBytes int64
	// MemTableBytes is the memory of the memtables.
	MemTableBytes uint64
}

// Stats returns the database's size and memory.
func (s *Store) Stats() Stats {
	m := s.db.Metrics()
	return Stats{DiskBytes: m.DiskSpaceUsage(), CacheBytes: m.BlockCache.Size, MemTableBytes: m.MemTable.Size}
}

// Flush writes the memtables to tables (benchmarks, before measuring).
func (s *Store) Flush() error { return s.db.Flush() }

// compacting reports whether compactions are running (benchmarks).
func (s *Store) compacting() bool { return s.db.Metrics().Compact.NumInProgress > 0 }

// pebbleLogger sends pebble's messages to slog; its routine information is
// debug-level.
type pebbleLogger struct{ log *slog.Logger }

// Infof logs at debug level.
func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

// Errorf logs at error level.
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf logs at error level and panics: pebble expects it not to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("pebble: fatal: " + msg)
	panic("pebble: " + msg)
}
