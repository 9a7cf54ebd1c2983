package pulseclient

import (
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// headerCarrier adapts nats.Header to propagation.TextMapCarrier with
// lower-case keys, as pulsehooks services read them.
type headerCarrier nats.Header

var _ propagation.TextMapCarrier = headerCarrier{}

// Get returns the first value of key.
func (c headerCarrier) Get(key string) string {
	v := c[strings.ToLower(key)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Set sets key to value.
func (c headerCarrier) Set(key, value string) {
	c[strings.ToLower(key)] = []string{value}
}

// Keys lists the keys present.
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
