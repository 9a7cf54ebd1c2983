// Package redisconn turns a Redis URL (REDIS_URL) and the optional
// PULSEHOOKS_REDIS_* settings into a go-redis client: one node, a Sentinel
// set-up, or a Redis Cluster. It is the one place where the services build
// their Redis clients.
//
// URL forms:
//
//	redis://[user:pass@]host:6379/0            one node (rediss:// for TLS)
//	unix:///run/redis.sock?db=0                one node on a Unix socket
//	redis+sentinel://[user:pass@]s1:26379,s2:26379,s3:26379/mymaster/0
//	                                           Sentinel (rediss+sentinel:// for TLS)
//	redis://s1:26379/0?master_name=mymaster&addr=s2:26379
//	                                           Sentinel, go-redis's own form
//	redis+cluster://[user:pass@]n1:6379,n2:6379,n3:6379
//	                                           Redis Cluster (rediss+cluster:// for TLS)
//
// In the redis+sentinel form the user and password are the Redis nodes'
// (as in redis://); the Sentinels' own credentials, if any, are the
// sentinel_username and sentinel_password query parameters or
// PULSEHOOKS_REDIS_SENTINEL_USERNAME and PULSEHOOKS_REDIS_SENTINEL_PASSWORD.
// A port left out is 6379 for nodes and 26379 for Sentinels. Every other
// query parameter is go-redis's (dial_timeout, pool_size, …) and an unknown
// one is an error.
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
)

// Kind is the shape of a Redis deployment.
type Kind int

const (
	// Single is one Redis node (possibly with replicas the client does
	// not know of).
	Single Kind = iota + 1
	// Sentinel is a primary and its replicas watched by Redis Sentinels,
	// which the client asks for the current primary.
	Sentinel
	// Cluster is a Redis Cluster.
	Cluster
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Single:
		return "single"
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Settings refine the URL; each is optional.
type Settings struct {
	// SentinelMaster is the Sentinel master name, for a redis+sentinel
	// URL without one in its path (PULSEHOOKS_REDIS_SENTINEL_MASTER).
	SentinelMaster string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (PULSEHOOKS_REDIS_SENTINEL_USERNAME, PULSEHOOKS_REDIS_SENTINEL_PASSWORD).
	SentinelUsername string
	SentinelPassword string
	// ClusterAddrs are more seed nodes of a redis+cluster URL
	// (PULSEHOOKS_REDIS_CLUSTER_ADDRS, comma-separated host:port).
	ClusterAddrs []string
	// TLSCAFile is a PEM file of the CAs that sign the servers'
	// certificates, instead of the system's (PULSEHOOKS_REDIS_TLS_CA_FILE).
	TLSCAFile string
	// TLSServerName is the name the servers' certificates must carry,
	// instead of the URL's first host (PULSEHOOKS_REDIS_TLS_SERVER_NAME).
	TLSServerName string
}

// SettingsFromEnv reads Settings from the PULSEHOOKS_REDIS_* variables.
func SettingsFromEnv(env *envconf.Reader) Settings {
	s := Settings{
		SentinelMaster:   env.String("", "PULSEHOOKS_REDIS_SENTINEL_MASTER"),
		SentinelUsername: env.String("", "PULSEHOOKS_REDIS_SENTINEL_USERNAME"),
		SentinelPassword: env.String("", "PULSEHOOKS_REDIS_SENTINEL_PASSWORD"),
		TLSCAFile:        env.String("", "PULSEHOOKS_REDIS_TLS_CA_FILE"),
		TLSServerName:    env.String("", "PULSEHOOKS_REDIS_TLS_SERVER_NAME"),
	}
	for _, a := range strings.Split(env.String("", "PULSEHOOKS_REDIS_CLUSTER_ADDRS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			s.ClusterAddrs = append(s.ClusterAddrs, a)
		}
	}
	return s
}

// Options are a parsed URL: the kind and go-redis's options for it (the
// other two are nil).
type Options struct {
	Kind     Kind
	Single   *redis.Options
	Failover *redis.FailoverOptions
	Cluster  *redis.ClusterOptions
}

// Addrs are the addresses the client starts from: the node, the
// Sentinels, or the cluster's seed nodes.
func (o *Options) Addrs() []string {
	switch o.Kind {
	case Single:
		return []string{o.Single.Addr}
	case Sentinel:
		return o.Failover.SentinelAddrs
	case Cluster:
		return o.Cluster.Addrs
	}
	return nil
}

// String describes the deployment without credentials, for logs.
func (o *Options) String() string {
	s := o.Kind.String() + " " + strings.Join(o.Addrs(), ",")
	if o.Kind == Sentinel {
		s += " master " + o.Failover.MasterName
	}
	return s
}

// NewClient returns a client for the options. It makes no call.
func (o *Options) NewClient() redis.UniversalClient {
	switch o.Kind {
	case Sentinel:
		return redis.NewFailoverClient(o.Failover)
	case Cluster:
		return redis.NewClusterClient(o.Cluster)
	default:
		return redis.NewClient(o.Single)
	}
}

// New parses rawURL with s and returns a client; it makes no call.
func New(rawURL string, s Settings) (redis.UniversalClient, *Options, error) {
	o, err := Parse(rawURL, s)
	if err != nil {
		return nil, nil, err
	}
	return o.NewClient(), o, nil
}

// Parse parses rawURL, refined by s. Its errors never repeat a password.
func Parse(rawURL string, s Settings) (*Options, error) {
	o, err := parse(rawURL, s)
	if err != nil {
		return nil, fmt.Errorf("redis URL %s: %w", redact(rawURL), err)
	}
	return o, nil
}

func parse(rawURL string, s Settings) (*Options, error) {
	if rawURL == "" {
		return nil, errors.New("empty")
	}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, errors.New("no scheme: want redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://")
	}
	if scheme == "unix" {
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return finish(&Options{Kind: Single, Single: o}, false, s)
	}
	base, mode, _ := strings.Cut(scheme, "+")
	if base != "redis" && base != "rediss" {
		return nil, fmt.Errorf("unknown scheme %q: want redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://", scheme)
	}
	var (
		o   *Options
		err error
	)
	switch mode {
	case "":
		o, err = parseSingle(rawURL, s)
	case "sentinel":
		o, err = parseSentinel(base, rest, s)
	case "cluster":
		o, err = parseCluster(base, rest, s)
	default:
		return nil, fmt.Errorf("unknown scheme %q: want redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://", scheme)
	}
	if err != nil {
		return nil, err
	}
	return finish(o, base == "rediss", s)
}

// finish checks the settings against the kind and applies the TLS ones.
func finish(o *Options, useTLS bool, s Settings) (*Options, error) {
	if o.Kind != Sentinel && (s.SentinelMaster != "" || s.SentinelUsername != "" || s.SentinelPassword != "") {
		return nil, fmt.Errorf("PULSEHOOKS_REDIS_SENTINEL_* is set but the URL is for %s Redis: use redis+sentinel://", o.Kind)
	}
	if o.Kind != Cluster && len(s.ClusterAddrs) > 0 {
		return nil, fmt.Errorf("PULSEHOOKS_REDIS_CLUSTER_ADDRS is set but the URL is for %s Redis: use redis+cluster://", o.Kind)
	}
	if err := setTLS(o, useTLS, s); err != nil {
		return nil, err
	}
	return o, nil
}

// parseSingle reads a redis:// or rediss:// URL: one node, or go-redis's
// failover form when it has master_name.
func parseSingle(rawURL string, s Settings) (*Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("not a URL") // url's error would repeat the password
	}
	if u.Query().Has("master_name") {
		f, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, err
		}
		if f.MasterName == "" {
			return nil, errors.New("master_name is empty")
		}
		if s.SentinelMaster != "" && s.SentinelMaster != f.MasterName {
			return nil, fmt.Errorf("master_name %q and PULSEHOOKS_REDIS_SENTINEL_MASTER %q differ", f.MasterName, s.SentinelMaster)
		}
		if err := setSentinelAuth(f, "", "", s); err != nil {
			return nil, err
		}
		return &Options{Kind: Sentinel, Failover: f}, nil
	}
	if strings.Contains(u.Host, ",") {
		return nil, errors.New("several hosts: use redis+sentinel:// or redis+cluster://")
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return &Options{Kind: Single, Single: o}, nil
}

// parseSentinel reads the part after "redis+sentinel://":
// [user:pass@]host[:port],host[:port]…/[master][/db][?query].
func parseSentinel(base, rest string, s Settings) (*Options, error) {
	p, err := splitMultiHost(rest, "26379")
	if err != nil {
		return nil, err
	}
	master := s.SentinelMaster
	db := ""
	switch len(p.path) {
	case 0:
	case 1:
		master = p.path[0]
	case 2:
		master, db = p.path[0], p.path[1]
	default:
		return nil, fmt.Errorf("path /%s: want /<master name>[/<db>]", strings.Join(p.path, "/"))
	}
	if master == "" {
		return nil, errors.New("no Sentinel master name: give it in the path (redis+sentinel://host:26379/mymaster) or PULSEHOOKS_REDIS_SENTINEL_MASTER")
	}
	if s.SentinelMaster != "" && s.SentinelMaster != master {
		return nil, fmt.Errorf("master name %q in the URL and PULSEHOOKS_REDIS_SENTINEL_MASTER %q differ", master, s.SentinelMaster)
	}
	if db != "" {
		if _, err := strconv.Atoi(db); err != nil {
			return nil, fmt.Errorf("database %q is not a number", db)
		}
	}
	for _, k := range []string{"master_name", "addr"} {
		if p.query.Has(k) {
			return nil, fmt.Errorf("query parameter %s: give it in the path or host list of a redis+sentinel URL", k)
		}
	}
	sentinelUser, sentinelPass := p.query.Get("sentinel_username"), p.query.Get("sentinel_password")
	p.query.Del("sentinel_username")
	p.query.Del("sentinel_password")
	if p.hasUser && p.query.Has("password") {
		return nil, errors.New("a password both in the URL's user part and as the password parameter")
	}
	q := p.query
	q.Set("master_name", master)
	if db != "" {
		q.Set("db", db)
	}
	for _, h := range p.hosts[1:] {
		q.Add("addr", h)
	}
	f, err := redis.ParseFailoverURL(base + "://" + p.hosts[0] + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	if p.hasUser {
		f.Username, f.Password = p.user, p.password
	}
	if err := setSentinelAuth(f, sentinelUser, sentinelPass, s); err != nil {
		return nil, err
	}
	return &Options{Kind: Sentinel, Failover: f}, nil
}

// setSentinelAuth sets the Sentinels' credentials from the URL's query
// (user, pass) or the settings, refusing two different ones.
func setSentinelAuth(f *redis.FailoverOptions, user, pass string, s Settings) error {
	pick := func(what, fromURL, fromEnv string) (string, error) {
		switch {
		case fromURL == "":
			return fromEnv, nil
		case fromEnv != "" && fromEnv != fromURL:
			return "", fmt.Errorf("the Sentinel %s is given both in the URL and in PULSEHOOKS_REDIS_SENTINEL_%s", what, strings.ToUpper(what))
		}
		return fromURL, nil
	}
	var err error
	if user, err = pick("username", user, s.SentinelUsername); err != nil {
		return err
	}
	if pass, err = pick("password", pass, s.SentinelPassword); err != nil {
		return err
	}
	if user != "" {
		f.SentinelUsername = user
	}
	if pass != "" {
		f.SentinelPassword = pass
	}
	return nil
}

// parseCluster reads the part after "redis+cluster://":
// [user:pass@]host[:port],host[:port]…[/0][?query].
func parseCluster(base, rest string, s Settings) (*Options, error) {
	p, err := splitMultiHost(rest, "6379")
	if err != nil {
		return nil, err
	}
	if len(p.path) > 1 || len(p.path) == 1 && p.path[0] != "0" {
		return nil, fmt.Errorf("path /%s: a Redis Cluster has only database 0", strings.Join(p.path, "/"))
	}
	if p.query.Has("addr") {
		return nil, errors.New("query parameter addr: list the nodes in the host part of a redis+cluster URL")
	}
	hosts := p.hosts
	for _, a := range s.ClusterAddrs {
		h, err := hostPort(a, "6379")
		if err != nil {
			return nil, fmt.Errorf("PULSEHOOKS_REDIS_CLUSTER_ADDRS: %w", err)
		}
		hosts = append(hosts, h)
	}
	q := p.query
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	userinfo := ""
	if p.hasUser {
		userinfo = url.UserPassword(p.user, p.password).String() + "@"
	}
	c, err := redis.ParseClusterURL(base + "://" + userinfo + hosts[0] + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	return &Options{Kind: Cluster, Cluster: c}, nil
}

// multiHost is a URL whose host part lists several hosts.
type multiHost struct {
	hasUser        bool
	user, password string
	hosts          []string
	path           []string
	query          url.Values
}

// splitMultiHost splits what follows "scheme://"; a host without a port
// gets defPort.
func splitMultiHost(rest, defPort string) (multiHost, error) {
	var p multiHost
	rest, rawQuery, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		u, err := url.Parse("x://" + authority[:i+1] + "h")
		if err != nil || u.User == nil {
			return p, errors.New("bad user part")
		}
		p.hasUser = true
		p.user = u.User.Username()
		p.password, _ = u.User.Password()
		authority = authority[i+1:]
	}
	for _, h := range strings.Split(authority, ",") {
		hp, err := hostPort(h, defPort)
		if err != nil {
			return p, err
		}
		p.hosts = append(p.hosts, hp)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg != "" {
			seg, err := url.PathUnescape(seg)
			if err != nil {
				return p, fmt.Errorf("path: %w", err)
			}
			p.path = append(p.path, seg)
		}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return p, fmt.Errorf("query: %w", err)
	}
	p.query = q
	return p, nil
}

// hostPort checks one "host[:port]" of a host list.
func hostPort(h, defPort string) (string, error) {
	if h == "" {
		return "", errors.New("empty host in the host list")
	}
	host, port := h, defPort
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		var err error
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			host = h[1 : len(h)-1]
		} else if host, port, err = net.SplitHostPort(h); err != nil {
			return "", fmt.Errorf("host %q: %w", h, err)
		}
	} else if strings.Contains(h, ":") {
		return "", fmt.Errorf("host %q: put an IPv6 address in brackets", h)
	}
	n, err := strconv.Atoi(port)
	if host == "" || err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("host %q: want host:port with a port from 1 to 65535", h)
	}
	return net.JoinHostPort(host, port), nil
}

// setTLS applies the TLS settings, which only a rediss URL may have.
func setTLS(o *Options, useTLS bool, s Settings) error {
	if !useTLS {
		if s.TLSCAFile != "" || s.TLSServerName != "" {
			return errors.New("PULSEHOOKS_REDIS_TLS_* is set but the URL is not rediss")
		}
		return nil
	}
	var cfg *tls.Config
	switch o.Kind {
	case Single:
		cfg = o.Single.TLSConfig
	case Sentinel:
		cfg = o.Failover.TLSConfig
	case Cluster:
		cfg = o.Cluster.TLSConfig
	}
	if cfg == nil { // go-redis sets one for every rediss URL
		return errors.New("rediss URL without TLS")
	}
	cfg.MinVersion = tls.VersionTLS12
	if s.TLSServerName != "" {
		cfg.ServerName = s.TLSServerName
	}
	if s.TLSCAFile != "" {
		pem, err := os.ReadFile(s.TLSCAFile)
		if err != nil {
			return fmt.Errorf("PULSEHOOKS_REDIS_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("PULSEHOOKS_REDIS_TLS_CA_FILE %s: no PEM certificate in it", s.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	return nil
}

// redact replaces the password in rawURL's user part (and any
// password-like query parameter) with "xxxxx".
func redact(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return "(not a URL)"
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		user := authority[:i]
		if j := strings.Index(user, ":"); j >= 0 {
			user = user[:j] + ":xxxxx"
		}
		authority = user + authority[i:]
	}
	path, rawQuery, hasQuery := strings.Cut(tail, "?")
	if hasQuery {
		if q, err := url.ParseQuery(rawQuery); err == nil {
			for k := range q {
				if strings.Contains(k, "password") {
					q.Set(k, "xxxxx")
				}
			}
			rawQuery = q.Encode()
		} else {
			rawQuery = "(unreadable)"
		}
		path += "?" + rawQuery
	}
	return scheme + "://" + authority + path
}
