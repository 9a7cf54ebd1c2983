package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// parseDockerfile splits a Dockerfile into instructions (comments dropped, "\" continuations joined).
func parseDockerfile(path string) ([]instruction, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var (
		out     []instruction
		pending strings.Builder
		start   int
	)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // comment inside a continued instruction
		}
		if pending.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(line)
		cmd, args, _ := strings.Cut(pending.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		pending.Reset()
	}
	if pending.Len() > 0 {
		return nil, errors.New("ends inside a continued instruction")
	}
	return out, sc.Err()
}

func runDockerfile(r *report, args []string) error {
	if len(args) != 1 {
		return errors.New("want one Dockerfile")
	}
	ins, err := parseDockerfile(args[0])
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	subj := "Dockerfile"
	known := map[string]bool{"FROM": true, "ARG": true, "ENV": true, "RUN": true, "COPY": true, "ADD": true, "WORKDIR": true,
		"USER": true, "ENTRYPOINT": true, "CMD": true, "LABEL": true, "EXPOSE": true, "VOLUME": true, "STOPSIGNAL": true,
		"HEALTHCHECK": true, "SHELL": true, "ONBUILD": true}
	var stages [][]instruction
	globalArgs := map[string]string{}
	for _, in := range ins {
		r.check(subj, known[in.cmd], "line %d: unknown instruction %q", in.line, in.cmd)
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			r.check(subj, in.cmd == "ARG", "line %d: %s before the first FROM", in.line, in.cmd)
			name, def, _ := strings.Cut(in.args, "=")
			globalArgs[name] = def
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	fmt.Printf("%s: %d instructions in %d stages\n", args[0], len(ins), len(stages))
	r.check(subj, len(stages) >= 2, "not multi-stage")
	if len(stages) < 2 {
		return nil
	}
	expand := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	image := func(from string) string {
		fields := strings.Fields(from)
		for i, f := range fields {
			if !strings.HasPrefix(f, "--") {
				fields = fields[i:]
				break
			}
		}
		return expand.ReplaceAllStringFunc(fields[0], func(m string) string {
			return globalArgs[expand.FindStringSubmatch(m)[1]]
		})
	}
	build, final := stages[0], stages[len(stages)-1]
	r.check(subj, strings.HasPrefix(image(build[0].args), "golang:1.26"), "builder image %q is not golang:1.26", image(build[0].args))
	r.check(subj, image(final[0].args) == "gcr.io/distroless/static-debian12:nonroot", "final image %q is not gcr.io/distroless/static-debian12:nonroot", image(final[0].args))

	joined := func(stage []instruction, cmd string) string {
		var b strings.Builder
		for _, in := range stage {
			if in.cmd == cmd {
				b.WriteString(in.args + "\n")
			}
		}
		return b.String()
	}
	run, env, arg := joined(build, "RUN"), joined(build, "ENV"), joined(build, "ARG")
	r.check(subj, strings.Contains(arg, "SERVICE"), "builder stage has no ARG SERVICE")
	r.check(subj, strings.Contains(run+env, "CGO_ENABLED=0"), "CGO_ENABLED=0 is not set")
	r.check(subj, strings.Contains(run, "go build") && strings.Contains(run, "-trimpath"), "go build without -trimpath")
	r.check(subj, regexp.MustCompile(`-ldflags\s+["']?-s -w`).MatchString(run), `go build without -ldflags "-s -w"`)
	r.check(subj, strings.Contains(run, "./cmd/${SERVICE}"), "does not build ./cmd/${SERVICE}")
	r.check(subj, strings.Contains(run, "--mount=type=cache,target=/go/pkg/mod"), "no module cache mount (/go/pkg/mod)")
	r.check(subj, strings.Contains(run, "--mount=type=cache,target=/root/.cache/go-build"), "no build cache mount")
	r.check(subj, strings.Contains(env+run, "GOWORK=off"), "does not build the service module on its own (GOWORK=off)")

	user := strings.TrimSpace(joined(final, "USER"))
	r.check(subj, user == "nonroot" || strings.HasPrefix(user, "nonroot:") || strings.HasPrefix(user, "65532"), "final stage USER %q is not nonroot (65532)", user)
	var entry []string
	ep := strings.TrimSpace(joined(final, "ENTRYPOINT"))
	r.check(subj, json.Unmarshal([]byte(ep), &entry) == nil && len(entry) == 1, "ENTRYPOINT %q is not the binary in exec form", ep)
	copied := joined(final, "COPY")
	r.check(subj, len(entry) == 1 && strings.Contains(copied, "--from=") && strings.Contains(copied, entry[0]), "ENTRYPOINT %v is not the binary copied from the builder", entry)

	// The build context is the repository root: .dockerignore must keep what go build needs.
	root := filepath.Join(filepath.Dir(args[0]), "..")
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	r.check("Dockerfile", err == nil, ".dockerignore at the repository root: %v", err)
	for _, dir := range []string{"pkg/", "proto/", "services/"} {
		r.check(subj, strings.Contains(string(ignore), "!"+dir), ".dockerignore does not keep %s", dir)
	}
	return nil
}
