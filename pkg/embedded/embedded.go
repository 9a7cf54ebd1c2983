// Package embedded runs the servers pulsehooks depends on inside the current
// process: a nats-server with JetStream, and (for development only) an
// in-memory Redis-compatible server.
package embedded

import (
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// NATSConfig configures an embedded nats-server.
type NATSConfig struct {
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port to listen on; -1 picks a free port.
	Port int
	// StoreDir is where JetStream keeps its data.
	StoreDir string
	// ServerName names the server; default "pulsehooks".
	ServerName string
	// Debug turns on server logging to stderr.
	Debug bool
}

// StartNATS starts a nats-server with JetStream and waits until it accepts
// connections.
func StartNATS(cfg NATSConfig) (*server.Server, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "pulsehooks"
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		MaxPayload: 8 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create nats-server: %w", err)
	}
	if cfg.Debug {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats-server on %s:%d not ready after 10s", cfg.Host, cfg.Port)
	}
	return srv, nil
}

// StartRedis starts an in-memory Redis-compatible server on addr (for example
// "127.0.0.1:0"). Its data lives in memory only and is lost when the process
// ends: it is meant for development.
func StartRedis(addr string) (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start in-process redis on %s: %w", addr, err)
	}
	return m, nil
}
