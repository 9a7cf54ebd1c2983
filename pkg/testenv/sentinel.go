package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the test Sentinels watch.
const SentinelMaster = "pulsehooks"

// Sentinel timings: short, so a test's failover takes seconds.
const (
	sentinelDownAfter       = 1000 * time.Millisecond
	sentinelFailoverTimeout = 5000 * time.Millisecond
)

// SentinelBinary finds redis-sentinel: $REDIS_SENTINEL, then PATH, then
// /usr/bin.
func SentinelBinary() (string, error) {
	if p, ok := findBinary("REDIS_SENTINEL", "redis-sentinel"); ok {
		return p, nil
	}
	return "", errors.New("redis-sentinel not found: install it (apt-get install redis-sentinel) or set REDIS_SENTINEL; scripts/ensure-deps.sh installs it")
}

// RedisNode is one redis-server or redis-sentinel process of a test set-up.
type RedisNode struct {
	name string
	port int
	cmd  *exec.Cmd
	done chan struct{}

	mu   sync.Mutex
	tail []string
}

// Addr is host:port of the process.
func (n *RedisNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// Kill sends SIGKILL and waits for the process to exit.
func (n *RedisNode) Kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// Log is the last lines the process wrote.
func (n *RedisNode) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.tail, "\n")
}

// startNode starts bin with args on port and waits until it answers PING.
func startNode(t testing.TB, name, bin string, port int, args ...string) *RedisNode {
	t.Helper()
	n := &RedisNode{name: name, port: port, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, bin, err)
	}
	n.cmd = cmd
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			n.mu.Lock()
			n.tail = append(n.tail, sc.Text())
			if len(n.tail) > 200 {
				n.tail = n.tail[1:]
			}
			n.mu.Unlock()
		}
		_ = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(n.Kill)
	c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return n
		}
		select {
		case <-n.done:
			t.Fatalf("%s exited at start: %s", name, n.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s not answering PING after 10s: %v", name, n.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SentinelSet is a Redis primary, one replica, and three redis-sentinel
// processes watching them (quorum 2), all on free loopback ports, with a
// down-after of 1 s. The nodes take DEBUG from loopback (DEBUG SLEEP
// stalls a replica). Everything is killed when the test ends.
type SentinelSet struct {
	t testing.TB
	// Nodes are the two redis-servers; which is primary changes with
	// failovers (see Primary).
	Nodes [2]*RedisNode
	// Sentinels are the three redis-sentinel processes.
	Sentinels [3]*RedisNode
}

// StartSentinelSet starts the set-up and waits until the replica is in sync
// and every Sentinel knows the replica and the other two Sentinels, so a
// failover can happen. A missing binary fails the test.
func StartSentinelSet(t testing.TB) *SentinelSet {
	t.Helper()
	server, err := RedisBinary()
	if err != nil {
		t.Fatal(err)
	}
	sentinel, err := SentinelBinary()
	if err != nil {
		t.Fatal(err)
	}
	s := &SentinelSet{t: t}
	dir := t.TempDir()
	nodeArgs := func(name string, port int) []string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
			"--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "no", "--loglevel", "warning",
			"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
			"--enable-debug-command", "local", // DEBUG SLEEP stalls a replica
		}
	}
	p0, p1 := freePort(t), freePort(t)
	s.Nodes[0] = startNode(t, "redis-server primary", server, p0, nodeArgs("node0", p0)...)
	s.Nodes[1] = startNode(t, "redis-server replica", server, p1,
		append(nodeArgs("node1", p1), "--replicaof", "127.0.0.1", strconv.Itoa(p0))...)
	for i := range s.Sentinels {
		port := freePort(t)
		d := filepath.Join(dir, "sentinel"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(d, "sentinel.conf") // Sentinel rewrites it
		body := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
dir %s
loglevel warning
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %[3]s %[5]d
sentinel failover-timeout %[3]s %[6]d
sentinel parallel-syncs %[3]s 1
`, port, d, SentinelMaster, p0, sentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s.Sentinels[i] = startNode(t, "redis-sentinel "+strconv.Itoa(i), sentinel, port, conf)
	}
	WaitFor(t, 30*time.Second, func() error {
		return s.ready(s.Nodes[0], 1)
	})
	return s
}

// ready checks that primary is the master with replicas in sync, as
// every Sentinel sees it, and that every Sentinel knows the others.
func (s *SentinelSet) ready(primary *RedisNode, replicas int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "role:master") || !strings.Contains(info, fmt.Sprintf("connected_slaves:%d", replicas)) {
		return fmt.Errorf("%s: %s", primary.Addr(), strings.Join(strings.Fields(info), " "))
	}
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		m, err := sc.Master(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
		}
		if addr := m["ip"] + ":" + m["port"]; addr != primary.Addr() {
			return fmt.Errorf("sentinel %s sees master %s, want %s", sn.Addr(), addr, primary.Addr())
		}
		if m["num-slaves"] != strconv.Itoa(replicas) || m["num-other-sentinels"] != "2" {
			return fmt.Errorf("sentinel %s: %d replicas wanted, sees %s; other sentinels %s", sn.Addr(), replicas, m["num-slaves"], m["num-other-sentinels"])
		}
		if strings.Contains(m["flags"], "down") || strings.Contains(m["flags"], "failover") {
			return fmt.Errorf("sentinel %s: master flags %s", sn.Addr(), m["flags"])
		}
	}
	return nil
}

// URL is the redis+sentinel:// URL of the set-up (pkg/redisconn).
func (s *SentinelSet) URL() string {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr()
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + SentinelMaster + "/0"
}

// Primary is the node the Sentinels name as master now.
func (s *SentinelSet) Primary() *RedisNode {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var last error
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err != nil {
			last = err
			continue
		}
		for _, n := range s.Nodes {
			if n.Addr() == net.JoinHostPort(addr[0], addr[1]) {
				return n
			}
		}
		last = fmt.Errorf("sentinel %s names master %v, not a node of the set-up", sn.Addr(), addr)
	}
	s.t.Fatalf("no sentinel names the master: %v", last)
	return nil
}

// KillPrimary SIGKILLs the current primary and returns it.
func (s *SentinelSet) KillPrimary() *RedisNode {
	s.t.Helper()
	p := s.Primary()
	p.Kill()
	return p
}

// WaitFailover waits until every Sentinel names a node other than old as
// master and that node answers as master, and returns it.
func (s *SentinelSet) WaitFailover(old *RedisNode, timeout time.Duration) *RedisNode {
	s.t.Helper()
	var primary *RedisNode
	WaitFor(s.t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		primary = nil
		for _, sn := range s.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
			addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
			_ = sc.Close()
			if err != nil {
				return fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
			}
			a := net.JoinHostPort(addr[0], addr[1])
			if a == old.Addr() {
				return fmt.Errorf("sentinel %s still names %s", sn.Addr(), a)
			}
			for _, n := range s.Nodes {
				if n.Addr() == a {
					primary = n
				}
			}
		}
		if primary == nil {
			return errors.New("the new master is not a node of the set-up")
		}
		c := redis.NewClient(&redis.Options{Addr: primary.Addr()})
		defer func() { _ = c.Close() }()
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("%s answers ROLE %v", primary.Addr(), role)
		}
		return nil
	})
	return primary
}
