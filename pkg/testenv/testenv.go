// Package testenv starts the real servers pulsehooks integration tests run
// against: nats-server embedded from its Go module, and a redis-server process
// on a free loopback port.
package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/embedded"
)

// WaitFor calls f until it returns nil or timeout passes, then fails the test
// with f's last error.
func WaitFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// NATS is an embedded nats-server with JetStream that can be restarted on the
// same port and store directory.
type NATS struct {
	t        testing.TB
	srv      *server.Server
	port     int
	storeDir string
}

// StartNATS starts an embedded nats-server with JetStream on a free port and a
// temporary store directory; it is shut down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, port: -1, storeDir: t.TempDir()}
	n.Start()
	n.port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Stop)
	return n
}

// URL is the client URL of the server.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// StoreDir is the JetStream store directory.
func (n *NATS) StoreDir() string { return n.storeDir }

// Server is the running server, or nil while stopped.
func (n *NATS) Server() *server.Server { return n.srv }

// Start starts the server (again) on the same port and store directory.
func (n *NATS) Start() {
	n.t.Helper()
	if n.srv != nil {
		return
	}
	var err error
	for i := 0; i < 50; i++ { // the port may still be in TIME_WAIT after a stop
		n.srv, err = embedded.StartNATS(embedded.NATSConfig{Port: n.port, StoreDir: n.storeDir, ServerName: "test"})
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("start nats-server: %v", err)
}

// Stop shuts the server down and waits until it has stopped.
func (n *NATS) Stop() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Restart stops and starts the server on the same port and store directory.
func (n *NATS) Restart() {
	n.t.Helper()
	n.Stop()
	n.Start()
}

// Conn returns a client connection that reconnects forever; it is closed when
// the test ends.
func (n *NATS) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	return connect(t, n.URL())
}

// connect opens a client connection to urls (comma-separated) that
// reconnects forever; it is closed when the test ends.
func connect(t testing.TB, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to nats at %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// jetStreamOn returns a JetStream context on nc.
func jetStreamOn(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

// JetStream returns a JetStream context on a new connection.
func (n *NATS) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	return jetStreamOn(t, n.Conn(t))
}

// Redis is a redis-server process on a free loopback port.
type Redis struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// RedisBinary finds redis-server: $REDIS_SERVER, then PATH, then /usr/bin.
func RedisBinary() (string, error) {
	if p, ok := findBinary("REDIS_SERVER", "redis-server"); ok {
		return p, nil
	}
	return "", fmt.Errorf("redis-server not found: install it (apt-get install redis-server) or set REDIS_SERVER; `make test` installs it when run as root")
}

// findBinary looks for a program: the path in the environment variable env,
// then name on PATH, then /usr/bin and /usr/local/bin.
func findBinary(env, name string) (string, bool) {
	if p := os.Getenv(env); p != "" {
		return p, true
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/bin", "/usr/local/bin"} {
		p := dir + "/" + name
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// StartRedis starts redis-server on a free loopback port with persistence off;
// it is stopped when the test ends. A missing redis-server fails the test.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := RedisBinary()
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Addr is host:port of the server.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Start starts the server (again) on the same port and waits for PING.
func (r *Redis) Start() {
	r.t.Helper()
	if r.cmd != nil {
		return
	}
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--protected-mode", "no",
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	stderr, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start %s: %v", r.bin, err)
	}
	r.cmd = cmd
	r.done = make(chan struct{})
	var logTail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logTail = append(logTail, sc.Text())
		}
		_ = cmd.Wait()
		close(r.done)
	}()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-r.done:
			r.cmd = nil
			r.t.Fatalf("redis-server exited at start: %s", strings.Join(logTail, "\n"))
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s not answering PING after 10s: %v", r.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit. The data is lost: the
// server runs without persistence.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Client returns a go-redis client for the server, closed when the test ends.
func (r *Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
