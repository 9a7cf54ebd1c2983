package redisconn

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
)

func TestParseForms(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		s         Settings
		check     func(t *testing.T, o *Options)
	}{
		{"single", "redis://:secret@127.0.0.1:6380/2?dial_timeout=2s", Settings{}, func(t *testing.T, o *Options) {
			want(t, o.Kind, Single)
			want(t, o.Single.Addr, "127.0.0.1:6380")
			want(t, o.Single.Password, "secret")
			want(t, o.Single.DB, 2)
			want(t, o.Single.DialTimeout, 2*time.Second)
			want(t, o.Single.TLSConfig == nil, true)
		}},
		{"single default port", "redis://redis", Settings{}, func(t *testing.T, o *Options) {
			want(t, o.Single.Addr, "redis:6379")
		}},
		{"unix socket", "unix:///run/redis.sock?db=3", Settings{}, func(t *testing.T, o *Options) {
			want(t, o.Kind, Single)
			want(t, o.Single.Network, "unix")
			want(t, o.Single.Addr, "/run/redis.sock")
			want(t, o.Single.DB, 3)
		}},
		{"single tls", "rediss://u:p@redis.example:6380", Settings{}, func(t *testing.T, o *Options) {
			want(t, o.Kind, Single)
			want(t, o.Single.Username, "u")
			want(t, o.Single.TLSConfig.ServerName, "redis.example")
		}},
		{"sentinel", "redis+sentinel://:data@s1:26379,s2,[::1]:26380/mymaster/3?sentinel_password=sp&pool_size=7", Settings{}, func(t *testing.T, o *Options) {
			want(t, o.Kind, Sentinel)
			want(t, o.Failover.SentinelAddrs, []string{"s1:26379", "s2:26379", "[::1]:26380"})
			want(t, o.Failover.MasterName, "mymaster")
			want(t, o.Failover.DB, 3)
			want(t, o.Failover.Password, "data")
			want(t, o.Failover.SentinelPassword, "sp")
			want(t, o.Failover.PoolSize, 7)
			want(t, o.String(), "sentinel s1:26379,s2:26379,[::1]:26380 master mymaster")
		}},
		{"sentinel master and auth from settings", "rediss+sentinel://s1", Settings{SentinelMaster: "m", SentinelUsername: "su", SentinelPassword: "sp", TLSServerName: "redis.internal"}, func(t *testing.T, o *Options) {
			want(t, o.Failover.SentinelAddrs, []string{"s1:26379"})
			want(t, o.Failover.MasterName, "m")
			want(t, o.Failover.DB, 0)
			want(t, o.Failover.SentinelUsername, "su")
			want(t, o.Failover.SentinelPassword, "sp")
			want(t, o.Failover.TLSConfig.ServerName, "redis.internal")
		}},
		{"sentinel same master twice", "redis+sentinel://s1/m", Settings{SentinelMaster: "m"}, func(t *testing.T, o *Options) {
			want(t, o.Failover.MasterName, "m")
		}},
		{"go-redis failover form", "redis://su:sp@s1:26379/1?master_name=m&addr=s2:26379&password=data", Settings{}, func(t *testing.T, o *Options) {
			want(t, o.Kind, Sentinel)
			want(t, o.Failover.SentinelAddrs, []string{"s1:26379", "s2:26379"})
			want(t, o.Failover.MasterName, "m")
			want(t, o.Failover.SentinelUsername, "su")
			want(t, o.Failover.SentinelPassword, "sp")
			want(t, o.Failover.Password, "data")
			want(t, o.Failover.DB, 1)
		}},
		{"cluster", "redis+cluster://u:p@n1:7000,n2,n3:7002?read_timeout=1s", Settings{ClusterAddrs: []string{"n4:7003"}}, func(t *testing.T, o *Options) {
			want(t, o.Kind, Cluster)
			want(t, o.Cluster.Addrs, []string{"n1:7000", "n2:6379", "n3:7002", "n4:7003"})
			want(t, o.Cluster.Username, "u")
			want(t, o.Cluster.Password, "p")
			want(t, o.Cluster.ReadTimeout, time.Second)
		}},
		{"cluster db 0", "rediss+cluster://n1/0", Settings{}, func(t *testing.T, o *Options) {
			want(t, o.Cluster.Addrs, []string{"n1:6379"})
			want(t, o.Cluster.TLSConfig.ServerName, "n1")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Parse(tc.url, tc.s)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.url, err)
			}
			tc.check(t, o)
			c := o.NewClient()
			if err := c.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url string
		s         Settings
		want      string
	}{
		{"empty", "", Settings{}, "empty"},
		{"no scheme", "localhost:6379", Settings{}, "no scheme"},
		{"unknown scheme", "http://localhost", Settings{}, `unknown scheme "http"`},
		{"unknown mode", "redis+ring://a,b", Settings{}, `unknown scheme "redis+ring"`},
		{"unix bad db", "unix:///tmp/redis.sock?db=x", Settings{}, "invalid database number"},
		{"unix with sentinel settings", "unix:///tmp/redis.sock", Settings{SentinelMaster: "m"}, "PULSEHOOKS_REDIS_SENTINEL_* is set"},
		{"bad url", "redis://:pa%zzss@host", Settings{}, "not a URL"},
		{"single bad db", "redis://host/x", Settings{}, "invalid database number"},
		{"single unknown option", "redis://host?pool=3", Settings{}, "unexpected option: pool"},
		{"single several hosts", "redis://a:1,b:2", Settings{}, "several hosts"},
		{"single with sentinel settings", "redis://host", Settings{SentinelMaster: "m"}, "PULSEHOOKS_REDIS_SENTINEL_* is set"},
		{"single with cluster addrs", "redis://host", Settings{ClusterAddrs: []string{"b:1"}}, "PULSEHOOKS_REDIS_CLUSTER_ADDRS is set"},
		{"failover empty master", "redis://s1?master_name=", Settings{}, "master_name is empty"},
		{"failover master differs", "redis://s1?master_name=a", Settings{SentinelMaster: "b"}, "differ"},
		{"failover unknown option", "redis://s1?master_name=a&sentinel_password=x", Settings{}, "unexpected option: sentinel_password"},
		{"sentinel no master", "redis+sentinel://s1,s2", Settings{}, "no Sentinel master name"},
		{"sentinel master differs", "redis+sentinel://s1/a", Settings{SentinelMaster: "b"}, "differ"},
		{"sentinel long path", "redis+sentinel://s1/m/0/x", Settings{}, "want /<master name>[/<db>]"},
		{"sentinel bad db", "redis+sentinel://s1/m/x", Settings{}, `database "x" is not a number`},
		{"sentinel empty host", "redis+sentinel://s1,,s2/m", Settings{}, "empty host"},
		{"sentinel bad port", "redis+sentinel://s1:99999/m", Settings{}, "port from 1 to 65535"},
		{"sentinel port not a number", "redis+sentinel://s1:abc/m", Settings{}, "port from 1 to 65535"},
		{"sentinel bare ipv6", "redis+sentinel://::1/m", Settings{}, "brackets"},
		{"sentinel master_name param", "redis+sentinel://s1/m?master_name=m", Settings{}, "query parameter master_name"},
		{"sentinel addr param", "redis+sentinel://s1/m?addr=s2:1", Settings{}, "query parameter addr"},
		{"sentinel two passwords", "redis+sentinel://:a@s1/m?password=b", Settings{}, "password both"},
		{"sentinel auth twice", "redis+sentinel://s1/m?sentinel_password=a", Settings{SentinelPassword: "b"}, "given both"},
		{"sentinel unknown option", "redis+sentinel://s1/m?colour=blue", Settings{}, "unexpected option: colour"},
		{"sentinel bad query", "redis+sentinel://s1/m?a=%zz", Settings{}, "query"},
		{"sentinel with cluster addrs", "redis+sentinel://s1/m", Settings{ClusterAddrs: []string{"b:1"}}, "PULSEHOOKS_REDIS_CLUSTER_ADDRS is set"},
		{"cluster db", "redis+cluster://n1,n2/1", Settings{}, "only database 0"},
		{"cluster addr param", "redis+cluster://n1?addr=n2:1", Settings{}, "query parameter addr"},
		{"cluster bad seed", "redis+cluster://n1", Settings{ClusterAddrs: []string{"n2:x"}}, "PULSEHOOKS_REDIS_CLUSTER_ADDRS"},
		{"cluster unknown option", "redis+cluster://n1?db=1", Settings{}, "unexpected option: db"},
		{"cluster with sentinel settings", "redis+cluster://n1", Settings{SentinelPassword: "x"}, "PULSEHOOKS_REDIS_SENTINEL_* is set"},
		{"tls settings without tls", "redis://host", Settings{TLSServerName: "x"}, "not rediss"},
		{"tls ca missing", "rediss://host", Settings{TLSCAFile: filepath.Join(dir, "none.pem")}, "PULSEHOOKS_REDIS_TLS_CA_FILE"},
		{"tls ca not pem", "rediss://host", Settings{TLSCAFile: notPEM}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Parse(tc.url, tc.s)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tc.url, o, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q): %v, want it to contain %q", tc.url, err, tc.want)
			}
		})
	}
}

func TestErrorsHidePasswords(t *testing.T) {
	for _, u := range []string{
		"redis://user:hunter2@host/x",
		"redis+sentinel://:hunter2@s1/m?sentinel_password=hunter2&colour=1",
		"redis://:hunter2%zz@host",
	} {
		_, err := Parse(u, Settings{})
		if err == nil {
			t.Fatalf("Parse(%q): no error", u)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q): %v repeats the password", u, err)
		}
	}
}

func TestSettingsFromEnv(t *testing.T) {
	env := map[string]string{
		"PULSEHOOKS_REDIS_SENTINEL_MASTER":   "m",
		"PULSEHOOKS_REDIS_SENTINEL_USERNAME": "su",
		"PULSEHOOKS_REDIS_SENTINEL_PASSWORD": "sp",
		"PULSEHOOKS_REDIS_CLUSTER_ADDRS":     " n1:1, n2:2 ,,",
		"PULSEHOOKS_REDIS_TLS_CA_FILE":       "/ca.pem",
		"PULSEHOOKS_REDIS_TLS_SERVER_NAME":   "redis",
	}
	got := SettingsFromEnv(envconf.NewFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	want(t, got, Settings{
		SentinelMaster: "m", SentinelUsername: "su", SentinelPassword: "sp",
		ClusterAddrs: []string{"n1:1", "n2:2"}, TLSCAFile: "/ca.pem", TLSServerName: "redis",
	})
}

func want[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
