package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one process the harness started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	logPath string
	done    chan struct{}
	err     error
	// carried is the CPU time of the processes this one replaced under
	// the same name (restarts), so CPU deltas across a restart add up.
	carried time.Duration
}

// procSpec says how to start a process.
type procSpec struct {
	name string
	bin  string
	args []string
	env  []string
	// firstLine makes start wait for the first stdout line and return it
	// (receiver and natsd print their address that way).
	firstLine bool
}

// startProc starts spec with stdout and stderr in <logDir>/<name>.log.
func startProc(ctx context.Context, logDir string, spec procSpec) (*proc, string, error) {
	logPath := filepath.Join(logDir, spec.name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(spec.bin, spec.args...)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	cmd.Env = append(cmd.Env, spec.env...)
	cmd.Stderr = logf
	var stdout io.ReadCloser
	if spec.firstLine {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			_ = logf.Close()
			return nil, "", err
		}
	} else {
		cmd.Stdout = logf
	}
	// Its own process group, so a Ctrl-C of the harness reaches the harness
	// only, and it stops its processes in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{name: spec.name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, "", fmt.Errorf("start %s: %w", spec.name, err)
	}
	p.started = time.Now()
	lineC := make(chan string, 1)
	if stdout != nil {
		go func() {
			br := bufio.NewReader(stdout)
			line, _ := br.ReadString('\n')
			lineC <- strings.TrimSpace(line)
			_, _ = logf.WriteString(line)
			_, _ = io.Copy(logf, br)
		}()
	}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	if stdout == nil {
		return p, "", nil
	}
	select {
	case line := <-lineC:
		if line == "" {
			_ = p.stop(5 * time.Second)
			return nil, "", fmt.Errorf("%s exited before it was ready: %s", spec.name, p.tail())
		}
		return p, line, nil
	case <-time.After(60 * time.Second):
		_ = p.stop(5 * time.Second)
		return nil, "", fmt.Errorf("%s not ready after 60s: %s", spec.name, p.tail())
	case <-ctx.Done():
		_ = p.stop(5 * time.Second)
		return nil, "", ctx.Err()
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to timeout, then kills the process.
func (p *proc) stop(timeout time.Duration) error {
	if p == nil {
		return nil
	}
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, timeout)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return nil
	case errors.As(p.err, &ee) && !ee.Exited():
		return nil // ended by a signal we sent
	}
	return fmt.Errorf("%s: %w: %s", p.name, p.err, p.tail())
}

// tail returns the last lines of the process's log.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-15, 0):], "\n")
}

// peakRSS is the process's peak resident set (VmHWM) in bytes; 0 when it
// cannot be read (the process is gone).
func (p *proc) peakRSS() int64 {
	if p == nil || p.cmd.Process == nil {
		return 0
	}
	return readVMHWM(p.cmd.Process.Pid)
}

// readVMHWM reads VmHWM of pid from /proc, in bytes.
func readVMHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// cpuTime is the CPU time (user + system) the process has used so far; 0
// when it cannot be read.
func (p *proc) cpuTime() time.Duration {
	if p == nil || p.cmd.Process == nil {
		return 0
	}
	if p.exited() && p.cmd.ProcessState != nil {
		return p.carried + p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	}
	return p.carried + p.liveCPUTime()
}

// liveCPUTime reads the running process's CPU time from /proc.
func (p *proc) liveCPUTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses and may hold
	// spaces): state is field 3, utime 14 and stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clockTicks
}

// freeAddr returns a free loopback address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// freeAddrs returns n free loopback addresses.
func freeAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// waitHTTP waits until url answers 200, failing early if p exits.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %v: %v", url, timeout, last)
}
