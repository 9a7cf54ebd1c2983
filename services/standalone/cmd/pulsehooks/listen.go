package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/services/config/relay/listen"
)

// runListen is `pulsehooks listen`: it relays a tenant's deliveries to a
// local URL through the config service (package listen), until Ctrl-C.
func runListen(ctx context.Context, args []string) error {
	fs := newFlagSet("listen")
	env := envconf.New()
	forwardTo := fs.String("forward-to", "", "local URL every delivery is sent to, such as http://localhost:3000/hook (required)")
	apiKey := fs.String("api-key", env.String("", "PULSEHOOKS_API_KEY"), "tenant API key (default $PULSEHOOKS_API_KEY)")
	baseURL := fs.String("url", env.String(listen.DefaultURL, "PULSEHOOKS_URL"), "public base URL of the config service")
	name := fs.String("name", listen.DefaultName, "name of the relay endpoint; the same name reuses the same endpoint")
	events := fs.String("events", "", "comma-separated event types to receive, such as job.completed,job.failed (default: keep the endpoint's; all for a new one)")
	fs.Usage = func() {
		_, _ = fmt.Fprintln(fs.Output(), "usage: pulsehooks listen --forward-to http://localhost:3000/hook [--api-key KEY] [--url URL] [--name NAME] [--events a,b]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := env.Err(); err != nil {
		return err
	}
	cfg := listen.Config{URL: *baseURL, APIKey: *apiKey, ForwardTo: *forwardTo, Name: *name, Out: os.Stdout}
	if *events != "" {
		cfg.EventTypes = []string{}
		for _, e := range strings.Split(*events, ",") {
			if e = strings.TrimSpace(e); e != "" {
				cfg.EventTypes = append(cfg.EventTypes, e)
			}
		}
	}
	return listen.Run(ctx, cfg)
}
