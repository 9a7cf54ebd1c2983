package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pulsehooks/pulsehooks/pkg/relayurl"
	"github.com/pulsehooks/pulsehooks/pkg/secretbox"
)

// Defaults of the settings Config leaves empty.
const (
	DefaultHTTPAddr      = ":8080"
	DefaultGRPCAddr      = ":9090"
	DefaultPortalLinkTTL = 15 * time.Minute
	DefaultSessionTTL    = 24 * time.Hour
	DefaultMaxBodyBytes  = 64 << 10
	// DefaultAttemptLogDir is where the attempt log is kept, relative to the
	// working directory.
	DefaultAttemptLogDir = "attemptlog"
	// DefaultAttemptRetention is how long the attempt log keeps messages
	// and attempts.
	DefaultAttemptRetention = 30 * 24 * time.Hour
)

// Config is the deployment configuration of the config service.
type Config struct {
	// HTTPAddr serves the operator API, the tenant REST API and the portal.
	HTTPAddr string
	// GRPCAddr serves the internal ConfigService.
	GRPCAddr string
	// PublicURL is the base URL of portal links; default "http://<HTTPAddr>".
	PublicURL string
	// AdminToken authenticates the operator API; required.
	AdminToken string
	// InternalToken, when set, must be sent by gRPC clients as a bearer
	// token. It is required unless GRPCAddr is a loopback address: the gRPC
	// API returns endpoint secrets in clear text.
	InternalToken string
	// MasterKey encrypts endpoint secrets and passwords at rest; 32 bytes, required.
	MasterKey []byte
	// Replicas is the number of replicas of each KV bucket; default 1.
	Replicas int
	// AllowNetworks re-opens private ranges for endpoint URLs (tests, dev).
	AllowNetworks []netip.Prefix
	// PortalLinkTTL is how long a portal link can be redeemed; default 15 min.
	PortalLinkTTL time.Duration
	// SessionTTL is how long a portal session lasts; default 24 h.
	SessionTTL time.Duration
	// MaxBodyBytes limits request bodies of config writes; default 64 KiB.
	MaxBodyBytes int64
	// AttemptLogDir is the local directory of this replica's attempt log
	// (an index of the EVENTS and ATTEMPTS streams, rebuilt from them when
	// empty); default "attemptlog".
	AttemptLogDir string
	// AttemptRetention is how long the attempt log keeps messages and
	// attempts; default 30 days, at least 1 h.
	AttemptRetention time.Duration
	// JobIDField is the field of an event's data that the message log can
	// be searched by (PULSEHOOKS_JOB_ID_FIELD); default "job_id".
	JobIDField string
	// Quotas are the per-tenant limits; zero fields take the defaults.
	Quotas Quotas
	// StuckAfter is how long the attempt-log indexer may read nothing while
	// its streams hold messages it has not indexed before /healthz fails
	// (PULSEHOOKS_STUCK_AFTER); default health.DefaultStuckAfter.
	StuckAfter time.Duration

	// RelayURL is the base URL at which delivery workers reach this
	// service's relay route (PULSEHOOKS_RELAY_URL; default PublicURL): relay
	// endpoints get the URL <RelayURL>/relay/v1/<endpoint id>. Delivery must
	// be configured with the same value.
	RelayURL string

	// Portal is the deployment's portal branding and embedding
	// (PULSEHOOKS_PORTAL_*); a tenant's own settings replace it field by
	// field.
	Portal PortalSettings
}

// Deps are the connections and telemetry the service uses.
type Deps struct {
	NATS           *nats.Conn
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	// MeterProvider makes the service's instruments; nil records none.
	MeterProvider metric.MeterProvider
	// MetricsHandler, if set, is served at GET /metrics on the HTTP listener.
	MetricsHandler http.Handler
}

// withDefaults fills empty settings and checks the rest, naming every problem.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.InternalToken == "" && !loopbackAddr(c.GRPCAddr) {
		errs = append(errs, fmt.Errorf("InternalToken is required when gRPC listens on %s, which is not a loopback address: "+
			"the gRPC API serves endpoint secrets (set PULSEHOOKS_INTERNAL_TOKEN, or listen on 127.0.0.1)", c.GRPCAddr))
	}
	if c.AdminToken == "" {
		errs = append(errs, errors.New("AdminToken is required (PULSEHOOKS_ADMIN_TOKEN)"))
	} else if len(c.AdminToken) < 16 {
		errs = append(errs, errors.New("AdminToken must be at least 16 characters"))
	}
	if len(c.MasterKey) != secretbox.KeySize {
		errs = append(errs, fmt.Errorf("MasterKey must be %d bytes, got %d (PULSEHOOKS_MASTER_KEY, base64)", secretbox.KeySize, len(c.MasterKey)))
	}
	switch {
	case c.Replicas == 0:
		c.Replicas = 1
	case c.Replicas < 0 || c.Replicas > 5:
		errs = append(errs, fmt.Errorf("replicas must be between 1 and 5, got %d", c.Replicas))
	}
	if c.PortalLinkTTL == 0 {
		c.PortalLinkTTL = DefaultPortalLinkTTL
	}
	if p, err := c.Portal.normalize(envSettingNames); err != nil {
		errs = append(errs, fmt.Errorf("portal settings: %w", err))
	} else {
		c.Portal = p
	}
	if c.PortalLinkTTL < time.Second {
		errs = append(errs, fmt.Errorf("PortalLinkTTL must be at least 1s, got %v", c.PortalLinkTTL))
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.SessionTTL < time.Second {
		errs = append(errs, fmt.Errorf("SessionTTL must be at least 1s, got %v", c.SessionTTL))
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.AttemptLogDir == "" {
		c.AttemptLogDir = DefaultAttemptLogDir
	}
	if c.AttemptRetention == 0 {
		c.AttemptRetention = DefaultAttemptRetention
	}
	if c.AttemptRetention < time.Hour {
		errs = append(errs, fmt.Errorf("AttemptRetention must be at least 1h, got %v (PULSEHOOKS_ATTEMPT_RETENTION)", c.AttemptRetention))
	}
	var qerr error
	if c.Quotas, qerr = c.Quotas.withDefaults(); qerr != nil {
		errs = append(errs, qerr)
	}
	if c.PublicURL != "" {
		if _, err := parsePublicURL(c.PublicURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RelayURL != "" {
		if _, err := relayurl.Parse(c.RelayURL); err != nil {
			errs = append(errs, fmt.Errorf("RelayURL (PULSEHOOKS_RELAY_URL): %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("config service configuration: %w", err)
	}
	return c, nil
}

// loopbackAddr reports whether a listen address binds only to loopback: a
// loopback IP or "localhost". An empty host or an unspecified IP listens on
// every interface; any other name may resolve to a public address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// parsePublicURL checks a portal base URL: http or https, a host, no query.
func parsePublicURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("PublicURL %q is not a URL: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("PublicURL %q must be an http or https base URL such as https://hooks.example.com", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// defaultPublicURL is "http://<bound HTTP address>", with a loopback host when
// the service listens on every interface.
func defaultPublicURL(bound net.Addr) *url.URL {
	host := bound.String()
	if ta, ok := bound.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		host = net.JoinHostPort("localhost", fmt.Sprint(ta.Port))
	}
	return &url.URL{Scheme: "http", Host: host}
}

func (d Deps) check() (Deps, error) {
	if d.NATS == nil {
		return d, errors.New("config service: Deps.NATS is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.TracerProvider == nil {
		d.TracerProvider = noop.NewTracerProvider()
	}
	return d, nil
}
