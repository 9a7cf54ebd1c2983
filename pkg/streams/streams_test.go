package streams

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

func TestPartitionIsStableAndSpread(t *testing.T) {
	const p = 64
	counts := make([]int, p)
	for i := 0; i < 64000; i++ {
		id := "ep_" + strconv.Itoa(i)
		n := Partition(id, p)
		if n != Partition(id, p) {
			t.Fatalf("Partition(%q) is not stable", id)
		}
		counts[n]++
	}
	for i, c := range counts {
		if c < 500 || c > 1500 {
			t.Errorf("partition %d got %d of 64000 ids, want about 1000", i, c)
		}
	}
	if got, want := DeliverySubject("ep_1", p), "deliveries."+strconv.Itoa(Partition("ep_1", p))+".ep_1"; got != want {
		t.Errorf("DeliverySubject = %q, want %q", got, want)
	}
}

func TestEnsureIsIdempotentAndGuardsPartitions(t *testing.T) {
	js := testenv.StartNATS(t).JetStream(t)
	ctx := context.Background()
	o := Options{Partitions: 4}
	for i := 0; i < 2; i++ {
		if err := EnsureAll(ctx, js, o, time.Minute); err != nil {
			t.Fatalf("EnsureAll #%d: %v", i+1, err)
		}
	}
	if _, err := js.Stream(ctx, Operational); err != nil {
		t.Errorf("EnsureAll did not make %s: %v", Operational, err)
	}
	p, err := PartitionsOf(ctx, js)
	if err != nil || p != 4 {
		t.Fatalf("PartitionsOf = %d, %v, want 4", p, err)
	}
	if _, err := EnsureDeliveries(ctx, js, Options{Partitions: 8}, time.Minute); err == nil {
		t.Fatal("EnsureDeliveries with another partition count succeeded, want an error")
	}
	for i := 0; i < 4; i++ {
		if _, err := js.Consumer(ctx, Deliveries, PartitionConsumer(i)); err != nil {
			t.Errorf("consumer %s: %v", PartitionConsumer(i), err)
		}
	}
}

func TestScheduledDeliveryMsgID(t *testing.T) {
	for _, tc := range []struct {
		resend string
		want   string
	}{
		{"", "msg_1.ep_1.2.3"}, // unchanged for ordinary deliveries
		{"rsnd_1", "msg_1.ep_1.rsnd_1.2.3"},
	} {
		if got := ScheduledDeliveryMsgID("msg_1", "ep_1", tc.resend, 2, 3); got != tc.want {
			t.Errorf("ScheduledDeliveryMsgID(resend %q) = %q, want %q", tc.resend, got, tc.want)
		}
	}
	if got, want := ResendMsgID("msg_1", "ep_1", "rsnd_1"), "msg_1.ep_1.rsnd_1"; got != want {
		t.Errorf("ResendMsgID = %q, want %q", got, want)
	}
}

// TestEnsureOperational: the stream is made with the default retention,
// ensured again without error, updated when the retention changes; a JetStream
// publish to it is stored once per Nats-Msg-Id and still reaches core
// subscribers of the subject.
func TestEnsureOperational(t *testing.T) {
	n := testenv.StartNATS(t)
	js := n.JetStream(t)
	ctx := context.Background()
	s, err := EnsureOperational(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.MaxAge != DefaultOperationalRetention || cfg.Retention != jetstream.LimitsPolicy || cfg.Duplicates != 2*time.Minute ||
		len(cfg.Subjects) != 1 || cfg.Subjects[0] != "pulsehooks.operational.>" {
		t.Errorf("OPERATIONAL = max age %v, %v, duplicates %v, subjects %v; want 7 days, limits, 2m, [pulsehooks.operational.>]", cfg.MaxAge, cfg.Retention, cfg.Duplicates, cfg.Subjects)
	}
	if _, err := EnsureOperational(ctx, js, Options{OperationalRetention: DefaultOperationalRetention}); err != nil {
		t.Fatal(err)
	}
	s, err = EnsureOperational(ctx, js, Options{OperationalRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != time.Hour {
		t.Errorf("max age after update = %v, want 1h", got)
	}

	core := n.Conn(t)
	sub, err := core.SubscribeSync(OperationalPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := core.Flush(); err != nil {
		t.Fatal(err)
	}
	subj := OperationalSubject(OpEndpointDisabled)
	id := OperationalMsgID(OpEndpointDisabled, "ep_1.7")
	for i := 0; i < 2; i++ {
		ack, err := js.Publish(ctx, subj, []byte("x"), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Stream != Operational || ack.Duplicate != (i == 1) {
			t.Errorf("publish #%d ack = %+v, want stream %s, duplicate %v", i+1, ack, Operational, i == 1)
		}
	}
	for i := 0; i < 2; i++ { // core subscribers see every publish
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("core subscriber, message %d: %v", i+1, err)
		}
		if m.Subject != subj || m.Header.Get(jetstream.MsgIDHeader) != id {
			t.Errorf("core subscriber got %s %v, want %s with Nats-Msg-Id %s", m.Subject, m.Header, subj, id)
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("OPERATIONAL holds %d messages after a duplicate publish, want 1", info.State.Msgs)
	}
}

// TestEnsureOperationalCapturedElsewhere: a stream an operator made for the
// operational subjects before OPERATIONAL existed is reported as such.
func TestEnsureOperationalCapturedElsewhere(t *testing.T) {
	js := testenv.StartNATS(t).JetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MINE", Subjects: []string{"pulsehooks.operational.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureOperational(ctx, js, Options{}); !errors.Is(err, ErrOperationalCaptured) {
		t.Fatalf("EnsureOperational = %v, want ErrOperationalCaptured", err)
	}
}
