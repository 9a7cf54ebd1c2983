// Command receiver is the benchmark's webhook receiver (see
// bench/internal/receiver): it verifies every signature, records the receive
// time of each webhook-id, and answers each endpoint as told.
//
// It listens on one port of several loopback addresses (127.0.0.1 to
// 127.0.0.<hosts>), so that endpoints spread over them look like different
// hosts to an HTTP client, as real endpoints do, and prints one JSON line on
// stdout once it listens: {"port":…,"hosts":["127.0.0.1",…]}.
//
//	receiver -hosts 100
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehooks/pulsehooks/bench/internal/receiver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	port := fs.Int("port", 0, "port to listen on (0: a free one)")
	hosts := fs.Int("hosts", 1, "listen on 127.0.0.1 … 127.0.0.<hosts> (1–254)")
	secrets := fs.String("secrets", "", "JSON file {\"<endpoint name>\":\"whsec_…\"} of secrets to verify with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hosts < 1 || *hosts > 254 {
		return fmt.Errorf("-hosts %d: must be 1–254", *hosts)
	}
	stopHanging := make(chan struct{})
	srv := receiver.New(stopHanging)
	if *secrets != "" {
		b, err := os.ReadFile(*secrets)
		if err != nil {
			return err
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: %w", *secrets, err)
		}
		for name, s := range m {
			if err := srv.SetSecret(name, s); err != nil {
				return err
			}
		}
	}
	lns, chosen, err := listen(*port, *hosts)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	addrs := make([]string, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr().(*net.TCPAddr).IP.String()
	}
	line, _ := json.Marshal(map[string]any{"port": chosen, "hosts": addrs})
	fmt.Println(string(line))

	g, gctx := errgroup.WithContext(ctx)
	for _, ln := range lns {
		g.Go(func() error {
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		close(stopHanging)
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
		return nil
	})
	return g.Wait()
}

// listen binds port (a free one when 0) on 127.0.0.1 … 127.0.0.<hosts>,
// trying another port when the chosen one is taken on some address.
func listen(port, hosts int) ([]net.Listener, int, error) {
	var lastErr error
	for try := 0; try < 20; try++ {
		first, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return nil, 0, err
		}
		p := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for i := 2; i <= hosts && err == nil; i++ {
			var ln net.Listener
			ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, p))
			if err == nil {
				lns = append(lns, ln)
			}
		}
		if err == nil {
			return lns, p, nil
		}
		lastErr = err
		for _, ln := range lns {
			_ = ln.Close()
		}
		if port != 0 {
			break
		}
	}
	return nil, 0, fmt.Errorf("listen on %d loopback addresses: %w", hosts, lastErr)
}
