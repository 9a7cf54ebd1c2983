package delivery

import (
	"strings"
	"testing"
	"time"
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
		{"negative queue", Config{LaneQueue: -1}, "LaneQueue"},
		{"negative retry delay", Config{RetryDelay: -time.Second}, "RetryDelay"},
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
	if cfg.AckWait != DefaultAckWait || cfg.LaneConcurrency != DefaultLaneConcurrency || cfg.LaneQueue != DefaultLaneQueue ||
		cfg.IdempotencyTTL != DefaultIdempotencyTTL || cfg.RetryDelay != DefaultRetryDelay || !strings.HasPrefix(cfg.UserAgent, "pulsehooks/") {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.AckWait <= MaxTimeout {
		t.Errorf("default AckWait %v does not exceed the longest attempt %v", cfg.AckWait, MaxTimeout)
	}
}
