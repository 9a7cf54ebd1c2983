package main

import (
	"context"
	"strings"
	"testing"
)

func TestRunListenRefusesBadFlags(t *testing.T) {
	t.Setenv("PULSEHOOKS_API_KEY", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no forward-to", []string{"--api-key", "k"}, "--forward-to"},
		{"no API key", []string{"--forward-to", "http://localhost:3000/hook"}, "API key"},
		{"bad url", []string{"--api-key", "k", "--forward-to", "http://localhost:3000/hook", "--url", "localhost:8080"}, "--url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runListen(context.Background(), tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("runListen(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
			}
		})
	}
}
