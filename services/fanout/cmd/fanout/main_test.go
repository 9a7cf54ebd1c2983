package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/services/fanout"
)

func TestLoadSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    settings
		wantErr string
	}{
		{
			name: "defaults",
			env:  map[string]string{},
			want: settings{
				natsURL:    "nats://127.0.0.1:4222",
				configAddr: "127.0.0.1:9090",
				healthAddr: ":8082",
				logLevel:   "info",
				stuckAfter: health.DefaultStuckAfter,
				service: fanout.Config{
					Streams:     streams.Options{Partitions: streams.DefaultPartitions, Replicas: 1},
					Concurrency: fanout.DefaultConcurrency,
				},
			},
		},
		{
			name: "everything set",
			env: map[string]string{
				"PULSEHOOKS_NATS_URL":           "nats://nats:4222",
				"PULSEHOOKS_CONFIG_GRPC":        "config:9090",
				"PULSEHOOKS_INTERNAL_TOKEN":     "phi_secret",
				"PULSEHOOKS_PARTITIONS":         "16",
				"PULSEHOOKS_REPLICAS":           "3",
				"PULSEHOOKS_FANOUT_CONCURRENCY": "128",
				"PULSEHOOKS_HEALTH_ADDR":        "off",
				"PULSEHOOKS_LOG_LEVEL":          "debug",
				"PULSEHOOKS_STUCK_AFTER":        "45s",
			},
			want: settings{
				natsURL:       "nats://nats:4222",
				configAddr:    "config:9090",
				internalToken: "phi_secret",
				healthAddr:    "",
				logLevel:      "debug",
				stuckAfter:    45 * time.Second,
				service: fanout.Config{
					Streams:     streams.Options{Partitions: 16, Replicas: 3},
					Concurrency: 128,
				},
			},
		},
		{
			name:    "malformed numbers",
			env:     map[string]string{"PULSEHOOKS_PARTITIONS": "many", "PULSEHOOKS_REPLICAS": "three"},
			wantErr: "PULSEHOOKS_PARTITIONS",
		},
		{
			name:    "malformed stuck-after",
			env:     map[string]string{"PULSEHOOKS_STUCK_AFTER": "soon"},
			wantErr: "PULSEHOOKS_STUCK_AFTER",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadSettings(envconf.NewFrom(func(k string) (string, bool) {
				v, ok := tt.env[k]
				return v, ok
			}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadSettings error = %v, want one mentioning %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadSettings: %v", err)
			}
			if got != tt.want {
				t.Errorf("loadSettings = %+v, want %+v", got, tt.want)
			}
		})
	}
}
