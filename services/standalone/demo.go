package standalone

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// demoTenantID is the id of the tenant made on first start.
const demoTenantID = "demo"

// ensureDemo creates the demo tenant and its API key on first start and keeps
// the key in the data directory so later starts can print it again.
func (s *Service) ensureDemo(ctx context.Context) error {
	path := filepath.Join(s.cfg.DataDir, "demo.json")
	found, err := readJSON(path, &s.demo)
	if err != nil {
		return err
	}
	if found {
		return nil
	}
	store := s.config.Store()
	if _, err := store.GetTenant(ctx, demoTenantID); err != nil {
		if _, err := store.CreateTenant(ctx, demoTenantID, "Demo tenant"); err != nil {
			return fmt.Errorf("create demo tenant: %w", err)
		}
	}
	key, err := store.CreateAPIKey(ctx, demoTenantID, "demo key made by make run")
	if err != nil {
		return fmt.Errorf("create demo API key: %w", err)
	}
	s.demo = demoTenant{TenantID: demoTenantID, APIKey: key.Key}
	return writeJSON(path, s.demo)
}

func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode base64: %w", err)
	}
	return b, nil
}

// printBanner tells a developer how to use the running system.
func (s *Service) printBanner(w io.Writer) {
	api := s.ConfigURL()
	ing := s.IngestURL()
	var b strings.Builder
	line := strings.Repeat("─", 78)
	fmt.Fprintf(&b, "\n%s\n pulsehooks is running (all services in one process)\n%s\n", line, line)
	fmt.Fprintf(&b, " REST API (x-api-key) ....... %s/v1\n", api)
	fmt.Fprintf(&b, " Operator API ............... %s/admin/v1\n operator API token ......... %s\n", api, s.secrets.AdminToken)
	fmt.Fprintf(&b, " Ingest HTTP ................ %s/v1/events\n ingest token ............... %s\n", ing, s.secrets.OperatorToken)
	fmt.Fprintf(&b, " Ingest NATS ................ %s  subject %q\n", s.NATSURL(), "pulsehooks.ingest.v1.publish")
	fmt.Fprintf(&b, " Config gRPC ................ %s\n", s.ConfigGRPCAddr())
	fmt.Fprintf(&b, " Data directory ............. %s\n", s.cfg.DataDir)
	if s.demo.APIKey != "" {
		fmt.Fprintf(&b, " Demo tenant ................ %s\n demo API key ............... %s\n", s.demo.TenantID, s.demo.APIKey)
		fmt.Fprintf(&b, "\n Paste these into the terminals you use for the commands below:\n")
		fmt.Fprintf(&b, "      export KEY=%s INGEST_TOKEN=%s\n", s.demo.APIKey, s.secrets.OperatorToken)
		fmt.Fprintf(&b, "\n 1. Start a receiver that verifies signatures (another terminal):\n")
		fmt.Fprintf(&b, "      go run ./services/standalone/cmd/pulsehooks receive -addr 127.0.0.1:9999\n")
		fmt.Fprintf(&b, "\n 2. Add an endpoint for it, subscribed to job.completed:\n")
		fmt.Fprintf(&b, "      ENDPOINT_ID=$(curl -s %s/v1/endpoints -H \"x-api-key: $KEY\" -H 'content-type: application/json' \\\n", api)
		fmt.Fprintf(&b, "        -d '{\"url\":\"http://127.0.0.1:9999/hook\",\"event_types\":[\"job.completed\"]}' | jq -r .id)\n")
		fmt.Fprintf(&b, "    Its signing secret (give it to the receiver with -secret to verify):\n")
		fmt.Fprintf(&b, "      curl -s %s/v1/endpoints/$ENDPOINT_ID/secret -H \"x-api-key: $KEY\" | jq -r .key\n", api)
		fmt.Fprintf(&b, "\n 3. Send a job event, as a job processor would:\n")
		fmt.Fprintf(&b, "      curl -s %s/v1/events -H \"authorization: Bearer $INGEST_TOKEN\" -H 'content-type: application/json' \\\n", ing)
		fmt.Fprintf(&b, "        -d '%s'\n", demoEventJSON(s.demo.TenantID))
		fmt.Fprintf(&b, "\n 4. Get a portal link for the tenant:\n")
		fmt.Fprintf(&b, "      curl -s -X POST %s/webhook -H \"x-api-key: $KEY\"\n", api)
	}
	if s.RedisInProcess() {
		fmt.Fprintf(&b, "\n NOTE: Redis is the in-process development server: retry schedules and delivery\n")
		fmt.Fprintf(&b, " idempotency records live in memory only and are lost when this process stops.\n")
		fmt.Fprintf(&b, " Set REDIS_URL=redis://host:6379/0 to keep them in a real Redis.\n")
	}
	fmt.Fprintf(&b, "%s\n Ctrl-C stops everything gracefully.\n%s\n", line, line)
	_, _ = io.WriteString(w, b.String())
}

// demoEventJSON is the body of the banner's example publish: a job.completed
// event valid against the built-in catalog's schema.
func demoEventJSON(tenantID string) string {
	return `{"tenant_id":"` + tenantID + `","event_type":"job.completed","data":{"job_id":"job_123","status":"completed",` +
		`"completed_at":"2026-01-15T10:00:41Z","result_url":"https://api.pulse.example/v1/jobs/job_123/result"}}`
}
