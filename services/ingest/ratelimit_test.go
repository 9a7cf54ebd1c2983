package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/embedded"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// redisClient connects to a redis-server started for the test.
func redisClient(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	rdb, _, err := redisconn.New(url, redisconn.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// burst publishes n events of the tenant over NATS at once and returns how
// many were accepted and the error replies by status and message.
func burst(t *testing.T, h *harness, tenant string, n int) (accepted int, refused map[string]int) {
	t.Helper()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	refused = map[string]int{}
	for i := range n {
		wg.Go(func() {
			reply, err := h.publish(&eventv1.PublishRequest{TenantId: tenant, EventType: "job.created", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused["error: "+err.Error()]++
				return
			}
			status, body, failed, err := decodeServiceError(reply)
			switch {
			case err != nil:
				refused["error: "+err.Error()]++
			case failed:
				refused[status+" "+body.GetCode()+": "+body.GetMessage()]++
			default:
				accepted++
			}
		})
	}
	wg.Wait()
	return accepted, refused
}

func TestIngestRateLimit(t *testing.T) {
	t.Run("redis-server", func(t *testing.T) { testIngestRateLimit(t, redisClient(t, testenv.StartRedis(t).URL())) })
	t.Run("redis-cluster", func(t *testing.T) { testIngestRateLimit(t, redisClient(t, testenv.StartRedisCluster(t).URL())) })
	// The standalone binary's in-process Redis-compatible server.
	t.Run("embedded", func(t *testing.T) {
		m, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		testIngestRateLimit(t, redisClient(t, "redis://"+m.Addr()+"/0"))
	})
}

func testIngestRateLimit(t *testing.T, rdb redis.UniversalClient) {
	// One event per second and a burst of 5: 20 publishes at once are far
	// quicker than the second that would free a sixth slot.
	h := newHarness(t, options{
		redis:     rdb,
		configure: func(c *Config) { c.RateLimit = RateLimit{EventsPerSecond: 1, Burst: 5} },
		quotas:    map[string]*configv1.TenantQuotas{tenantB: {IngestEventsPerSecond: proto.Uint32(1), IngestBurst: proto.Uint32(100)}},
	})

	tests := []struct {
		name         string
		tenant       string
		wantAccepted int
		wantRefused  map[string]int
	}{
		{"deployment limit", tenantA, 5, map[string]int{"429 rate_limited: tenant ten_acme is limited to 1 events/s (burst 5); retry later": 15}},
		{"tenant override", tenantB, 20, map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.eventCount()
			accepted, refused := burst(t, h, tt.tenant, 20)
			if accepted != tt.wantAccepted || fmt.Sprint(refused) != fmt.Sprint(tt.wantRefused) {
				t.Errorf("20 publishes: %d accepted, refused %v; want %d accepted, refused %v", accepted, refused, tt.wantAccepted, tt.wantRefused)
			}
			if got := h.eventCount() - before; got != uint64(tt.wantAccepted) {
				t.Errorf("EVENTS gained %d messages, want %d", got, tt.wantAccepted)
			}
		})
	}

	// HTTP answers 429 with Retry-After, and stores nothing.
	before := h.eventCount()
	status, header, body := h.post(`{"tenant_id":"`+tenantA+`","event_type":"job.created","data":{}}`, nil)
	if status != http.StatusTooManyRequests {
		t.Fatalf("POST over the limit = %d %s, want 429", status, body)
	}
	if e := httpError(t, body); e.Code != pulseclient.CodeRateLimited || e.Message != "tenant ten_acme is limited to 1 events/s (burst 5); retry later" {
		t.Errorf("429 body = %+v", e)
	}
	if ra, err := strconv.Atoi(header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q, want a whole number of seconds ≥ 1", header.Get("Retry-After"))
	}
	if got := h.eventCount(); got != before {
		t.Errorf("EVENTS went from %d to %d messages after a refused POST", before, got)
	}
}

func TestIngestRateLimitFailsOpen(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := redisClient(t, r.URL())
	h := newHarness(t, options{redis: rdb, configure: func(c *Config) { c.RateLimit = RateLimit{EventsPerSecond: 1, Burst: 1} }})
	r.Stop()
	before := h.eventCount()
	accepted, refused := burst(t, h, tenantA, 10)
	if accepted != 10 || len(refused) != 0 {
		t.Errorf("with Redis down: %d of 10 accepted, refused %v; want every event accepted", accepted, refused)
	}
	if got := h.eventCount() - before; got != 10 {
		t.Errorf("EVENTS gained %d messages, want 10", got)
	}
	// Redis back: the limit holds again once the pause after the failure ends.
	r.Start()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if accepted, _ := burst(t, h, tenantA, 5); accepted == 5 {
			return errors.New("the limit is not applied yet")
		}
		return nil
	})
}

func TestRateLimitWithDefaults(t *testing.T) {
	tests := []struct {
		in      RateLimit
		want    RateLimit
		wantErr bool
	}{
		{RateLimit{}, RateLimit{EventsPerSecond: 1000, Burst: 2000}, false},
		{RateLimit{EventsPerSecond: NoRateLimit}, RateLimit{EventsPerSecond: NoRateLimit, Burst: 2000}, false},
		{RateLimit{EventsPerSecond: 5, Burst: 5}, RateLimit{EventsPerSecond: 5, Burst: 5}, false},
		{RateLimit{EventsPerSecond: -2}, RateLimit{}, true},
		{RateLimit{Burst: -1}, RateLimit{}, true},
	}
	for _, tt := range tests {
		got, err := tt.in.withDefaults()
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("%+v.withDefaults() = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
