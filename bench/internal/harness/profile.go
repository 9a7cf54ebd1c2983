package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// startProfiles, with Options.Profile, fetches a CPU profile of every
// process of sys that serves pprof while the load runs (after a short
// warm-up, for up to 30 s), and returns the function that waits for it,
// then fetches heap and allocation profiles and writes `go tool pprof -top`
// text next to each. Files go to <results>/profiles/<scenario>-<process>-*.
func (h *Harness) startProfiles(ctx context.Context, sys *system, scenario string, load time.Duration) func() []string {
	if !h.opts.Profile || len(sys.pprof) == 0 {
		return func() []string { return nil }
	}
	dir := filepath.Join(h.opts.Results, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.logf("  profiles: %v", err)
		return func() []string { return nil }
	}
	warm := min(2*time.Second, load/5)
	secs := int(min(max(load-warm-time.Second, time.Second), 30*time.Second) / time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var files []string
	add := func(f string) {
		mu.Lock()
		files = append(files, f)
		mu.Unlock()
	}
	for name, addr := range sys.pprof {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(warm):
			case <-ctx.Done():
				return
			}
			f := filepath.Join(dir, fmt.Sprintf("%s-%s-cpu.pprof", scenario, name))
			if err := fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), f, time.Duration(secs+30)*time.Second); err != nil {
				h.logf("  cpu profile of %s: %v", name, err)
				return
			}
			add(f)
		}()
	}
	return func() []string {
		wg.Wait()
		for name, addr := range sys.pprof {
			for _, kind := range []string{"heap", "allocs"} {
				f := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.pprof", scenario, name, kind))
				if err := fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/%s", addr, kind), f, 30*time.Second); err != nil {
					h.logf("  %s profile of %s: %v", kind, name, err)
					continue
				}
				add(f)
			}
		}
		for _, f := range files {
			h.topText(ctx, f)
		}
		return files
	}
}

// fetch GETs url into the file path.
func fetch(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// topText writes `go tool pprof -top` of a profile to <profile>.txt, by
// flat and then by cumulative cost (for allocation profiles, by bytes
// allocated).
func (h *Harness) topText(ctx context.Context, profile string) {
	args := []string{"tool", "pprof", "-top", "-nodecount=40"}
	if strings.HasSuffix(profile, "-allocs.pprof") {
		args = append(args, "-sample_index=alloc_space")
	}
	var out []byte
	for _, extra := range [][]string{nil, {"-cum"}} {
		b, err := exec.CommandContext(ctx, "go", append(append(append([]string{}, args...), extra...), profile)...).Output()
		if err != nil {
			h.logf("  pprof -top %s: %v", profile, err)
			return
		}
		out = append(out, b...)
		out = append(out, '\n')
	}
	_ = os.WriteFile(profile+".txt", out, 0o644)
}
