package delivery

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

func TestAttemptTimeout(t *testing.T) {
	cfg := Config{}.withDefaults()
	for _, tc := range []struct {
		ms   uint32
		want time.Duration
	}{
		{0, DefaultTimeout},
		{1, time.Second},
		{999, time.Second},
		{5000, 5 * time.Second},
		{30000, 30 * time.Second},
		{120000, 30 * time.Second},
	} {
		if got := cfg.attemptTimeout(tc.ms); got != tc.want {
			t.Errorf("attemptTimeout(%d ms) = %v, want %v", tc.ms, got, tc.want)
		}
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero value", Config{}, ""},
		{"short ack wait", Config{AckWait: 10 * time.Millisecond}, "AckWait"},
		{"timeout above 30s", Config{DefaultTimeout: time.Minute}, "DefaultTimeout"},
		{"negative concurrency", Config{LaneConcurrency: -1}, "LaneConcurrency"},
		{"worker cap below the lane cap", Config{LaneConcurrency: 16, MaxInFlight: 8}, "MaxInFlight"},
		{"negative queue", Config{LaneQueue: -1}, "LaneQueue"},
		{"negative retry delay", Config{RetryDelay: -time.Second}, "RetryDelay"},
		{"replica wait over 2s", Config{ReplicaWait: 3 * time.Second}, "ReplicaWait"},
		{"first attempt delayed", Config{Schedule: []time.Duration{time.Second, time.Second}}, "Schedule[0]"},
		{"negative schedule delay", Config{Schedule: []time.Duration{0, -time.Second}}, "Schedule[1]"},
		{"one attempt only", Config{Schedule: []time.Duration{0}}, ""},
		{"jitter above half", Config{Jitter: 0.6}, "jitter"},
		{"no jitter", Config{Jitter: -1}, ""},
		{"lease beyond the duplicate window", Config{ClaimLease: 3 * time.Minute}, "ClaimLease"},
		{"lease within a longer window", Config{ClaimLease: 3 * time.Minute, Streams: streams.Options{DuplicateWindow: 5 * time.Minute}}, ""},
		{"lease too short", Config{ClaimLease: time.Millisecond}, "ClaimLease"},
		{"negative failing threshold", Config{FailingAfter: -1}, "FailingAfter"},
		{"negative disable threshold", Config{DisableAfter: -time.Hour}, "DisableAfter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.withDefaults().validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("validate = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("validate = %v, want an error about %s", err, tc.wantErr)
			}
		})
	}
	cfg := Config{}.withDefaults()
	if cfg.AckWait != DefaultAckWait || cfg.LaneConcurrency != DefaultLaneConcurrency || cfg.LaneQueue != DefaultLaneQueue || cfg.MaxInFlight != DefaultMaxInFlight ||
		cfg.IdempotencyTTL != DefaultIdempotencyTTL || cfg.RetryDelay != DefaultRetryDelay || !strings.HasPrefix(cfg.UserAgent, "pulsehooks/") {
		t.Errorf("defaults = %+v", cfg)
	}
	if !slices.Equal(cfg.Schedule, DefaultSchedule()) || cfg.Jitter != DefaultJitter || cfg.DisableAfter != 5*24*time.Hour ||
		cfg.FailingAfter != 3 || cfg.ClaimLease != DefaultClaimLease || cfg.ClaimBatch != DefaultClaimBatch {
		t.Errorf("retry defaults = %+v", cfg)
	}
	// A killed worker's partitions are taken over once its leases lapse,
	// and its unacked deliveries return after AckWait: both within 15 s.
	// Attempts longer than AckWait (up to MaxTimeout) are kept by
	// InProgress every AckWait/3, not by AckWait.
	if cfg.LeaseTTL+cfg.AckWait > 15*time.Second || streams.DeliveryPinnedTTL > cfg.LeaseTTL {
		t.Errorf("default LeaseTTL %v + AckWait %v exceed 15 s, or the pinned TTL %v exceeds the lease TTL", cfg.LeaseTTL, cfg.AckWait, streams.DeliveryPinnedTTL)
	}
}

func TestParseSchedule(t *testing.T) {
	got, err := ParseSchedule("0s, 5s,5m,30m,2h,5h,10h,10h")
	if err != nil || !slices.Equal(got, DefaultSchedule()) {
		t.Errorf("ParseSchedule = %v, %v; want the default schedule", got, err)
	}
	if _, err := ParseSchedule("0s,soon"); err == nil {
		t.Error("ParseSchedule(0s,soon) = nil error, want one")
	}
}
