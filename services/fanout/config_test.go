package fanout

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{
		Concurrency:     DefaultConcurrency,
		AckWait:         DefaultAckWait,
		DeliveryAckWait: DefaultDeliveryAckWait,
		MaxAckPending:   DefaultMaxAckPending,
		PublishWindow:   DefaultPublishWindow,
		PendingBytes:    DefaultPendingBytes,
		PublishTimeout:  DefaultPublishTimeout,
		RetryDelay:      DefaultRetryDelay,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
	if got != want {
		t.Errorf("Config{}.withDefaults() = %+v, want %+v", got, want)
	}
	set := Config{Concurrency: 3, AckWait: 5 * time.Second, RetryDelay: time.Millisecond}
	if got := set.withDefaults(); got.Concurrency != 3 || got.AckWait != 5*time.Second || got.RetryDelay != time.Millisecond {
		t.Errorf("withDefaults changed set fields: %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{}, ""},
		{"negative concurrency", Config{Concurrency: -1}, "Concurrency"},
		{"shortest ack wait", Config{AckWait: minAckWait, DeliveryAckWait: minAckWait}, ""},
		{"ack wait too short", Config{AckWait: minAckWait - 1}, "configuration: AckWait"},
		{"delivery ack wait too short", Config{DeliveryAckWait: time.Millisecond}, "DeliveryAckWait"},
		{"negative max ack pending", Config{MaxAckPending: -2}, "MaxAckPending"},
		{"negative publish window", Config{PublishWindow: -1}, "PublishWindow"},
		{"negative pending bytes", Config{PendingBytes: -1}, "PendingBytes"},
		{"negative publish timeout", Config{PublishTimeout: -time.Second}, "PublishTimeout"},
		{"negative retry delay", Config{RetryDelay: -time.Second}, "RetryDelay"},
		{"negative shutdown timeout", Config{ShutdownTimeout: -time.Second}, "ShutdownTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.withDefaults().validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("validate() = %v, want an error mentioning %s", err, tt.wantErr)
			}
		})
	}
}

func TestConfigRetryDelay(t *testing.T) {
	cfg := Config{RetryDelay: time.Second}.withDefaults()
	tests := []struct {
		delivered uint64
		want      time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{5, 16 * time.Second},
		{6, maxRetryDelay},
		{1 << 40, maxRetryDelay},
	}
	for _, tt := range tests {
		if got := cfg.retryDelay(tt.delivered); got != tt.want {
			t.Errorf("retryDelay(%d) = %v, want %v", tt.delivered, got, tt.want)
		}
	}
}

func TestConfigWindow(t *testing.T) {
	cfg := Config{Concurrency: 64, PublishWindow: 256, PendingBytes: 64 << 20}
	tests := []struct {
		msgSize int
		want    int
	}{
		{0, 256},
		{1 << 10, 256},
		{64 << 10, 16},
		{1 << 20, 1},
		{8 << 20, 1},
	}
	for _, tt := range tests {
		if got := cfg.window(tt.msgSize); got != tt.want {
			t.Errorf("window(%d) = %d, want %d", tt.msgSize, got, tt.want)
		}
	}
}
