package standalone_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// TestPartitionCountIsKeptPerDataDirectory starts a new data directory with
// no partition count configured (it gets DefaultPartitions), restarts it
// with none (it keeps its count), and with a different one (refused: the
// deliveries stored under the old layout would be stranded).
func TestPartitionCountIsKeptPerDataDirectory(t *testing.T) {
	redis := testenv.StartRedis(t)
	dir := t.TempDir()
	unset := func(c *standalone.Config) { c.Partitions = 0 }

	s := startSystem(t, sysOptions{dataDir: dir, redisURL: redis.URL(), hooks: unset})
	if got := partitionsOf(t, s.svc.NATSURL()); got != standalone.DefaultPartitions {
		t.Fatalf("new data directory has %d partitions, want %d", got, standalone.DefaultPartitions)
	}
	s.stop()

	s = startSystem(t, sysOptions{dataDir: dir, redisURL: redis.URL(), hooks: unset})
	if got := partitionsOf(t, s.svc.NATSURL()); got != standalone.DefaultPartitions {
		t.Fatalf("restarted data directory has %d partitions, want %d", got, standalone.DefaultPartitions)
	}
	s.stop()

	cfg := standalone.Config{DataDir: dir, NATSPort: -1, ConfigHTTPAddr: "127.0.0.1:0", ConfigGRPCAddr: "127.0.0.1:0",
		IngestHTTPAddr: "127.0.0.1:0", RedisURL: redis.URL(), Partitions: standalone.DefaultPartitions + 1}
	_, err := standalone.New(context.Background(), cfg, standalone.Deps{Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "partition") {
		t.Fatalf("New with another partition count: %v, want a refusal naming the partitions", err)
	}
}

// partitionsOf reads the partition count recorded on DELIVERIES.
func partitionsOf(t *testing.T, url string) int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := streams.PartitionsOf(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
