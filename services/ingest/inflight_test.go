package ingest

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInflightCloseWaitsForAdmitted(t *testing.T) {
	f := newInflight(2)
	if !f.acquire() {
		t.Fatal("acquire on an open tracker = false, want true")
	}
	closed := make(chan error, 1)
	go func() { closed <- f.closeAndWait(context.Background()) }()

	select {
	case err := <-closed:
		t.Fatalf("closeAndWait returned %v with a request in flight, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.release()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("closeAndWait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closeAndWait did not return after the last release")
	}
	if f.acquire() {
		t.Error("acquire after close = true, want false")
	}
}

func TestInflightCloseTimesOut(t *testing.T) {
	f := newInflight(1)
	if !f.acquire() {
		t.Fatal("acquire = false, want true")
	}
	defer f.release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()

	if err := f.closeAndWait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("closeAndWait error = %v, want context.DeadlineExceeded", err)
	}
}

func TestInflightCapsConcurrency(t *testing.T) {
	f := newInflight(1)
	if !f.acquire() {
		t.Fatal("acquire = false, want true")
	}
	second := make(chan bool, 1)
	go func() { second <- f.acquire() }()

	select {
	case <-second:
		t.Fatal("second acquire passed with the only slot taken, want it to wait")
	case <-time.After(50 * time.Millisecond):
	}
	f.release()
	select {
	case ok := <-second:
		if !ok {
			t.Error("second acquire = false, want true once the slot is free")
		}
		f.release()
	case <-time.After(5 * time.Second):
		t.Fatal("second acquire still waiting after the release")
	}
}
