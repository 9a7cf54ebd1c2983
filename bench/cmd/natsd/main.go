// Command natsd runs a nats-server with JetStream, embedded from its Go
// module, for the benchmark's processes shape (each service its own process).
// It prints {"url":…} on stdout once it accepts connections, and, when it
// stops, the messages and bytes it received from and sent to its clients on
// stderr (a line of JSON: in_msgs, out_msgs, in_bytes, out_bytes), so a kept
// run shows how many NATS messages the system exchanged.
//
//	natsd -port 4222 -store /tmp/js
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pulsehooks/pulsehooks/pkg/embedded"
	"github.com/pulsehooks/pulsehooks/pkg/pprofserver"
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
	port := fs.Int("port", -1, "client port (-1: a free one)")
	store := fs.String("store", "", "JetStream store directory (required)")
	pprofAddr := fs.String("pprof", "", "net/http/pprof listener address (default off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *store == "" {
		return fmt.Errorf("-store is required")
	}
	if *pprofAddr != "" {
		_, stop, err := pprofserver.Serve(*pprofAddr)
		if err != nil {
			return err
		}
		defer stop()
	}
	srv, err := embedded.StartNATS(embedded.NATSConfig{Port: *port, StoreDir: *store, ServerName: "pulsehooks-bench"})
	if err != nil {
		return err
	}
	line, _ := json.Marshal(map[string]string{"url": srv.ClientURL()})
	fmt.Println(string(line))
	<-ctx.Done()
	if v, err := srv.Varz(nil); err == nil {
		counts, _ := json.Marshal(map[string]int64{
			"in_msgs": v.InMsgs, "out_msgs": v.OutMsgs, "in_bytes": v.InBytes, "out_bytes": v.OutBytes,
		})
		fmt.Fprintln(os.Stderr, string(counts))
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}
