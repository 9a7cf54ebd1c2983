package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRunRefusesUnknownCommandsAndFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr error
		wantOut string
	}{
		{"unknown command", []string{"bogus"}, errUsage, `unknown command "bogus"`},
		{"listen -h", []string{"listen", "-h"}, nil, ""},
		{"unknown listen flag", []string{"listen", "--nope"}, errUsage, ""},
		{"unknown serve flag", []string{"-bogus"}, errUsage, ""},
		{"unknown receive flag", []string{"receive", "-bogus"}, errUsage, ""},
		{"stray argument", []string{"receive", "extra"}, errUsage, ""},
		{"help", []string{"help"}, nil, "receive"},
		{"serve -h", []string{"serve", "-h"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stderr)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("run(%q) = %v, want %v", tt.args, err, tt.wantErr)
			}
			if !strings.Contains(stderr.String(), tt.wantOut) {
				t.Errorf("run(%q) printed %q, want it to contain %q", tt.args, stderr.String(), tt.wantOut)
			}
		})
	}
}
