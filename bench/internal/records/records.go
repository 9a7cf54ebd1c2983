// Package records defines what the load generator and the receiver write
// down — one line per acknowledged event and one per received webhook — and
// reads and writes those lines as tab-separated text.
package records

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Ack is one event that ingest acknowledged.
type Ack struct {
	// ID is the message id ingest assigned (the webhook-id of its deliveries).
	ID string
	// Tenant is the tenant the event was published for.
	Tenant string
	// Sent is when the publish started, in Unix nanoseconds.
	Sent int64
	// At is when the acknowledgement arrived, in Unix nanoseconds.
	At int64
}

// Receipt is one webhook request the receiver got.
type Receipt struct {
	// ID is the webhook-id header.
	ID string
	// Endpoint is the endpoint name, from the request path /ep/<name>.
	Endpoint string
	// At is when the whole request had been read, in Unix nanoseconds.
	At int64
	// Status is what the receiver answered; 0 for a request it never
	// answered (mode hang).
	Status int
}

// OK reports whether the receiver answered the request with a 2xx status,
// which makes it a completed delivery.
func (r Receipt) OK() bool { return r.Status >= 200 && r.Status < 300 }

// WriteAck writes a as one line.
func WriteAck(w io.Writer, a Ack) error {
	_, err := fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", a.ID, a.Tenant, a.Sent, a.At)
	return err
}

// WriteReceipt writes r as one line.
func WriteReceipt(w io.Writer, r Receipt) error {
	_, err := fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", r.ID, r.Endpoint, r.At, r.Status)
	return err
}

// ReadAcks reads lines written by WriteAck.
func ReadAcks(r io.Reader) ([]Ack, error) {
	var out []Ack
	err := readLines(r, func(f []string) error {
		sent, err1 := strconv.ParseInt(f[2], 10, 64)
		at, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("bad times %q %q", f[2], f[3])
		}
		out = append(out, Ack{ID: f[0], Tenant: f[1], Sent: sent, At: at})
		return nil
	})
	return out, err
}

// ReadReceipts reads lines written by WriteReceipt.
func ReadReceipts(r io.Reader) ([]Receipt, error) {
	var out []Receipt
	err := readLines(r, func(f []string) error {
		at, err1 := strconv.ParseInt(f[2], 10, 64)
		status, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("bad time or status %q %q", f[2], f[3])
		}
		out = append(out, Receipt{ID: f[0], Endpoint: f[1], At: at, Status: status})
		return nil
	})
	return out, err
}

// readLines calls f with the four tab-separated fields of each non-empty line.
func readLines(r io.Reader, f func([]string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 4 {
			return fmt.Errorf("line %d: %d fields, want 4: %q", n, len(fields), line)
		}
		if err := f(fields); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read line %d: %w", n+1, err)
	}
	return nil
}
