// Command natsd runs a nats-server with JetStream as its own process, for
// tests that must SIGKILL the server (pkg/testenv.StartNATSProcess): an
// in-process server cannot be killed without killing the test.
//
//	natsd -port 4222 -store /tmp/js
//
// It prints "ready" on stdout once it accepts connections and runs until
// SIGINT or SIGTERM (or SIGKILL).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pulsehooks/pulsehooks/pkg/embedded"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	port := fs.Int("port", 4222, "client port")
	store := fs.String("store", "", "JetStream store directory (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *store == "" {
		return fmt.Errorf("-store is required")
	}
	srv, err := embedded.StartNATS(embedded.NATSConfig{Port: *port, StoreDir: *store, ServerName: "natsd"})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}
