package attemptlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Indexer tuning.
const (
	// maxBatch is the most stream messages stored in one batch.
	maxBatch = 2000
	// linger is how long a batch waits for more messages once the
	// consumer has nothing buffered; maxBatchAge bounds a batch's age.
	linger      = 5 * time.Millisecond
	maxBatchAge = 200 * time.Millisecond
	// pullBuffer is how many messages the consumer buffers.
	pullBuffer = 4096
	// restartDelay is the wait before following a stream again after an
	// error, or while it does not exist yet.
	restartDelay = time.Second
	// sweepEvery bounds the interval of the retention sweep.
	sweepEvery = 10 * time.Minute
)

// Indexer follows EVENTS, ATTEMPTS and STATES with ordered consumers (no server
// state to share or clean up: each replica has its own) from the positions
// stored in the Store, writes what it reads, and applies the retention.
type Indexer struct {
	store *Store
	js    jetstream.JetStream
	log   *slog.Logger
	live  *health.Liveness
	// progress is, per stream followed, what the last commit reached.
	progress map[string]*progress
}

// progress is the sequence and stored time of the last message committed.
type progress struct {
	seq atomic.Uint64
	at  atomic.Int64 // Unix nanoseconds; 0 until the first commit
}

// NewIndexer returns an indexer of js's streams into store.
func NewIndexer(store *Store, js jetstream.JetStream, log *slog.Logger) *Indexer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Indexer{store: store, js: js, log: log.With("component", "attemptlog"), progress: map[string]*progress{
		streams.Events: {}, streams.Attempts: {}, streams.States: {},
	}}
}

// Progress returns the stream sequence and stored time of the last message
// of stream the indexer has committed since it started; ok is false before
// its first commit (or for a stream it does not follow).
func (ix *Indexer) Progress(stream string) (seq uint64, at time.Time, ok bool) {
	p := ix.progress[stream]
	if p == nil {
		return 0, time.Time{}, false
	}
	ns := p.at.Load()
	if ns == 0 {
		return 0, time.Time{}, false
	}
	return p.seq.Load(), time.Unix(0, ns), true
}

// ReportTo registers the indexer's loops, one per stream, in live when Run
// starts: each is stuck when it has read nothing for live's limit while its
// stream holds messages past the stored position. Call it before Run.
func (ix *Indexer) ReportTo(live *health.Liveness) { ix.live = live }

// Run indexes until ctx ends, then returns nil. Streams that do not exist
// yet are waited for; a consumer that fails is created again from the
// stored position.
func (ix *Indexer) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, name := range []string{streams.Events, streams.Attempts, streams.States} {
		g.Go(func() error {
			ix.followForever(ctx, name)
			return nil
		})
	}
	g.Go(func() error {
		ix.sweepForever(ctx)
		return nil
	})
	return g.Wait()
}

func (ix *Indexer) sweepForever(ctx context.Context) {
	every := min(ix.store.width/2, sweepEvery)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := ix.store.Sweep(); err != nil {
			ix.log.ErrorContext(ctx, "attempt log retention sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// followForever follows a stream until ctx ends.
func (ix *Indexer) followForever(ctx context.Context, name string) {
	loop := ix.live.Loop("config: attempt log indexer of "+name, func(ctx context.Context) (bool, error) {
		return ix.Behind(ctx, name)
	})
	defer loop.Close()
	var lastErr string
	for ctx.Err() == nil {
		loop.Beat()
		err := ix.follow(ctx, name, loop)
		if ctx.Err() != nil {
			return
		}
		if msg := err.Error(); msg != lastErr {
			level := slog.LevelWarn
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				level = slog.LevelInfo
			}
			ix.log.Log(ctx, level, "attempt log: following stream again shortly", "stream", name, "err", err)
			lastErr = msg
		}
		select {
		case <-ctx.Done():
		case <-time.After(restartDelay):
		}
	}
}

// follow reads a stream from the stored position on, storing each batch
// with the position it reaches, until ctx ends (nil) or the consumer fails.
func (ix *Indexer) follow(ctx context.Context, name string, loop *health.Loop) error {
	st, err := ix.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", name, err)
	}
	pos, err := ix.store.Position(name)
	if err != nil {
		return err
	}
	created, err := ix.store.StreamCreated(name)
	if err != nil {
		return err
	}
	info := st.CachedInfo()
	switch {
	case !created.IsZero() && !created.Equal(info.Created.UTC()):
		ix.log.WarnContext(ctx, "the stream was recreated since the attempt log last read it; reading it from the start", "stream", name, "position", pos)
		pos = 0
	case pos > info.State.LastSeq:
		ix.log.WarnContext(ctx, "attempt log is ahead of the stream (was the stream recreated?); reading it from the start", "stream", name, "position", pos, "stream_last_seq", info.State.LastSeq)
		pos = 0
	}
	if created.IsZero() || pos == 0 {
		if err := ix.store.SetStreamPosition(name, info.Created, pos); err != nil {
			return err
		}
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if pos > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: pos + 1}
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create ordered consumer on %s: %w", name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pullBuffer))
	if err != nil {
		return fmt.Errorf("consume %s: %w", name, err)
	}
	defer it.Stop()
	ix.log.DebugContext(ctx, "attempt log following stream", "stream", name, "from", pos+1)

	var (
		b       = ix.store.NewBatch()
		pending int // messages read since the last commit
		started time.Time
		last    time.Time // stored time of the message at pos
	)
	defer func() { b.Close() }()
	commit := func() error {
		if pending == 0 {
			return nil
		}
		err := b.Commit(name, pos)
		b.Close()
		b, pending = ix.store.NewBatch(), 0
		if err == nil {
			if p := ix.progress[name]; p != nil {
				p.seq.Store(pos)
				p.at.Store(last.UnixNano())
			}
		}
		return err
	}
	for {
		var (
			msg jetstream.Msg
			err error
		)
		loop.Beat()
		if pending == 0 {
			msg, err = it.Next(jetstream.NextContext(ctx))
		} else {
			msg, err = it.Next(jetstream.NextMaxWait(linger))
		}
		switch {
		case errors.Is(err, nats.ErrTimeout):
			if err := commit(); err != nil {
				return err
			}
			continue
		case err != nil:
			cerr := commit()
			if ctx.Err() != nil {
				return cerr
			}
			return errors.Join(fmt.Errorf("read %s: %w", name, err), cerr)
		}
		meta, err := msg.Metadata()
		if err != nil {
			ix.log.WarnContext(ctx, "attempt log: message without metadata skipped", "stream", name, "err", err)
			continue
		}
		if pending == 0 {
			started = time.Now()
		}
		pos, last = meta.Sequence.Stream, meta.Timestamp
		pending++
		if err := ix.add(b, name, pos, msg.Data()); err != nil {
			ix.log.WarnContext(ctx, "attempt log: record skipped", "stream", name, "seq", pos, "err", err)
		}
		if pending >= maxBatch || time.Since(started) >= maxBatchAge {
			if err := commit(); err != nil {
				return err
			}
		}
	}
}

// Behind reports whether the stream holds messages after the position the
// store has reached (one stream info request).
func (ix *Indexer) Behind(ctx context.Context, name string) (bool, error) {
	st, err := ix.js.Stream(ctx, name)
	if err != nil {
		return false, fmt.Errorf("look up stream %s: %w", name, err)
	}
	pos, err := ix.store.Position(name)
	if err != nil {
		return false, err
	}
	return st.CachedInfo().State.LastSeq > pos, nil
}

// add decodes one stream message into the batch.
func (ix *Indexer) add(b *Batch, stream string, seq uint64, data []byte) error {
	switch stream {
	case streams.Events:
		ev := &eventv1.Event{}
		if err := proto.Unmarshal(data, ev); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		return b.AddEvent(seq, ev)
	case streams.States:
		r := &eventv1.StateRecord{}
		if err := proto.Unmarshal(data, r); err != nil {
			return fmt.Errorf("decode state record: %w", err)
		}
		return b.AddState(seq, r)
	default:
		a := &eventv1.Attempt{}
		if err := proto.Unmarshal(data, a); err != nil {
			return fmt.Errorf("decode attempt: %w", err)
		}
		return b.AddAttempt(seq, a)
	}
}

// LoadAttempt reads the attempt stored at seq in the ATTEMPTS stream (direct
// get) and checks that it is attempt id of tenant; ErrNotFound when the
// stream no longer holds it.
func LoadAttempt(ctx context.Context, attempts jetstream.Stream, seq uint64, tenant, id string) (*eventv1.Attempt, error) {
	raw, err := attempts.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("attemptlog: read attempt %s at %d: %w", id, seq, err)
	}
	a := &eventv1.Attempt{}
	if err := proto.Unmarshal(raw.Data, a); err != nil {
		return nil, fmt.Errorf("attemptlog: decode attempt %s at %d: %w", id, seq, err)
	}
	if a.GetId() != id || a.GetTenantId() != tenant {
		return nil, ErrNotFound
	}
	return a, nil
}

// LoadEvent reads the event stored at seq in the EVENTS stream (direct get)
// and checks that it is message id of tenant; ErrNotFound when the stream no
// longer holds it.
func LoadEvent(ctx context.Context, events jetstream.Stream, seq uint64, tenant, id string) (*eventv1.Event, error) {
	raw, err := events.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("attemptlog: read event %s at %d: %w", id, seq, err)
	}
	ev := &eventv1.Event{}
	if err := proto.Unmarshal(raw.Data, ev); err != nil {
		return nil, fmt.Errorf("attemptlog: decode event %s at %d: %w", id, seq, err)
	}
	if ev.GetMessageId() != id || ev.GetTenantId() != tenant {
		return nil, ErrNotFound
	}
	return ev, nil
}
