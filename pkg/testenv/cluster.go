package testenv

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a real JetStream cluster of in-process nats-servers on
// loopback, joined by routes, each node with its own store directory. Nodes
// can be shut down and started again on the same ports and store, as a
// crashed or restarted server would be. Streams in tests use Replicas: 3.
type Cluster struct {
	t     testing.TB
	nodes []*ClusterNode
}

// ClusterNode is one server of a Cluster.
type ClusterNode struct {
	t        testing.TB
	name     string
	port     int
	opts     server.Options
	storeDir string
	srv      *server.Server
}

// StartCluster starts an n-node JetStream cluster (n ≥ 3 for R3 streams)
// and waits until it has a meta leader and every node knows every peer; it
// is shut down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	clientPorts := make([]int, n)
	routePorts := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		clientPorts[i], routePorts[i] = freePort(t), freePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[i])
	}
	for i := range n {
		node := &ClusterNode{
			t:        t,
			name:     fmt.Sprintf("n%d", i+1),
			port:     clientPorts[i],
			storeDir: t.TempDir(),
		}
		node.opts = server.Options{
			ServerName: node.name,
			Host:       "127.0.0.1",
			Port:       node.port,
			JetStream:  true,
			StoreDir:   node.storeDir,
			NoSigs:     true,
			NoLog:      true,
			MaxPayload: 8 << 20,
			Cluster: server.ClusterOpts{
				Name: "pulsehooks-test",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		c.nodes = append(c.nodes, node)
	}
	for _, node := range c.nodes {
		node.Start()
	}
	t.Cleanup(c.Stop)
	c.WaitReady(30 * time.Second)
	return c
}

// WaitReady waits until the cluster has a meta leader that sees every node
// online and every running node is current with it (as nats-server's own
// tests wait), failing the test after timeout.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	WaitFor(c.t, timeout, func() error {
		var leader *ClusterNode
		for _, node := range c.nodes {
			if node.srv != nil && node.srv.JetStreamIsLeader() {
				leader = node
			}
		}
		if leader == nil {
			return errors.New("no JetStream meta leader yet")
		}
		if got := len(leader.srv.JetStreamClusterPeers()); got != len(c.nodes) {
			return fmt.Errorf("meta leader %s sees %d of %d JetStream peers online", leader.name, got, len(c.nodes))
		}
		for _, node := range c.nodes {
			if node.srv != nil && !node.srv.JetStreamIsCurrent() {
				return fmt.Errorf("%s is not current with the meta leader", node.name)
			}
		}
		return nil
	})
}

// Nodes are the cluster's servers.
func (c *Cluster) Nodes() []*ClusterNode { return c.nodes }

// URLs is the comma-separated client URL list of every node, as
// nats.Connect takes it.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i, node := range c.nodes {
		urls[i] = node.URL()
	}
	return strings.Join(urls, ",")
}

// StreamLeader is the node leading stream (in the global account), or nil
// while none does.
func (c *Cluster) StreamLeader(stream string) *ClusterNode {
	for _, node := range c.nodes {
		if node.srv != nil && node.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return node
		}
	}
	return nil
}

// WaitStreamLeader waits until stream has a leader among the running nodes
// and returns it.
func (c *Cluster) WaitStreamLeader(stream string, timeout time.Duration) *ClusterNode {
	c.t.Helper()
	var leader *ClusterNode
	WaitFor(c.t, timeout, func() error {
		if leader = c.StreamLeader(stream); leader == nil {
			return fmt.Errorf("stream %s has no leader", stream)
		}
		return nil
	})
	return leader
}

// Stop shuts every node down.
func (c *Cluster) Stop() {
	for _, node := range c.nodes {
		node.Stop()
	}
}

// Conn returns a client connection to the whole cluster that reconnects
// forever; it is closed when the test ends.
func (c *Cluster) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	return connect(t, c.URLs())
}

// JetStream returns a JetStream context on a new connection to the cluster.
func (c *Cluster) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	return jetStreamOn(t, c.Conn(t))
}

// Name is the node's server name.
func (n *ClusterNode) Name() string { return n.name }

// URL is the node's client URL.
func (n *ClusterNode) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Server is the running server, or nil while the node is stopped.
func (n *ClusterNode) Server() *server.Server { return n.srv }

// Running reports whether the node is up.
func (n *ClusterNode) Running() bool { return n.srv != nil }

// Start starts the node (again) on its ports and store directory and waits
// until it accepts client connections.
func (n *ClusterNode) Start() {
	n.t.Helper()
	if n.srv != nil {
		return
	}
	var err error
	for range 50 { // a port may still be in TIME_WAIT after a stop
		opts := n.opts // NewServer keeps and changes the options it is given
		opts.Routes = append([]*url.URL(nil), n.opts.Routes...)
		var srv *server.Server
		if srv, err = server.NewServer(&opts); err == nil {
			srv.Start()
			if srv.ReadyForConnections(10 * time.Second) {
				n.srv = srv
				return
			}
			srv.Shutdown()
			err = fmt.Errorf("not ready for connections after 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("start nats-server %s: %v", n.name, err)
}

// Stop shuts the node down (Shutdown: connections and routes drop at once)
// and waits until it has stopped.
func (n *ClusterNode) Stop() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}
