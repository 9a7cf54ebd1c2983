package standalone_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// publishBody matches the JSON after -d ' of a publish command, across lines.
var publishBody = regexp.MustCompile(`(?s)-d '(\{"tenant_id".*?\}\})'`)

// TestTourAsPasted checks what the README tour and the banner of make run
// tell a new user to paste: no placeholders in the banner's commands, every
// shell variable set before use, and the example job.completed event accepted
// by ingest against the built-in catalog's schema.
func TestTourAsPasted(t *testing.T) {
	var out testenv.Buffer
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), out: &out, hooks: func(c *standalone.Config) { c.Demo = true }})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C") {
		if time.Now().After(deadline) {
			t.Fatalf("no banner within 30 s; got:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	tour := string(readme)
	tour = tour[strings.Index(tour, "## A five-minute tour"):]
	tour = tour[:strings.Index(tour[1:], "\n## ")+1]

	tests := []struct {
		name, text string
	}{
		{"banner", out.String()},
		{"README", tour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.text, "<id>") {
				t.Errorf("%s has an <id> placeholder in a command", tt.name)
			}
			for _, v := range []string{"KEY", "INGEST_TOKEN", "ENDPOINT_ID"} {
				use, set := strings.Index(tt.text, "$"+v), strings.Index(tt.text, v+"=")
				if use >= 0 && (set < 0 || set > use) {
					t.Errorf("%s uses $%s before it says how to set it", tt.name, v)
				}
			}
			m := publishBody.FindStringSubmatch(tt.text)
			if m == nil {
				t.Fatalf("%s has no publish command", tt.name)
			}
			code, res := sys.publishHTTP(t, m[1])
			if code != http.StatusAccepted {
				t.Errorf("%s's publish %s: status %d: %v", tt.name, m[1], code, res)
			}
		})
	}
}
