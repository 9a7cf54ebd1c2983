package standalone_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// faultWait bounds each wait of the fault tests.
const faultWait = 45 * time.Second

// faultPartitions is PULSEHOOKS_PARTITIONS of newCluster.
const faultPartitions = 16

// hookKey is one delivery as an endpoint sees it: the endpoint (by the name
// in its URL path) and the webhook-id, which is the message id.
type hookKey struct {
	endpoint string
	id       string
}

// hookBehaviour is how one endpoint of a hookSink answers.
type hookBehaviour struct {
	// delay is how long each request takes.
	delay time.Duration
	// firstFails answers the first request of each webhook-id 503.
	firstFails bool
}

// hookSink is a set of webhook endpoints on one loopback server, the
// endpoint named by the URL path (/<name>). It verifies each request's
// signature and body on arrival, counts requests per endpoint and
// webhook-id, and knows which requests are in flight (arrived, not yet
// answered).
type hookSink struct {
	srv *httptest.Server

	mu        sync.Mutex
	behaviour map[string]hookBehaviour
	verifiers map[string]*signature.Verifier
	// jobOf is the job id each message id's event carries, registered as
	// events are accepted; jobsSeen the job ids the bodies of each
	// webhook-id carried, checked against it in report (a delivery can
	// arrive before the test has the accepted message id).
	jobOf    map[string]string
	jobsSeen map[string]map[string]bool
	// requests and ok count requests and 2xx answers per delivery.
	requests map[hookKey]int
	ok       map[hookKey]int
	total    int
	inflight map[hookKey]int
	// cutOff counts requests whose body did not arrive whole.
	cutOff int
	// problems are requests that should not have arrived as they did.
	problems []string
}

func newHookSink(t *testing.T) *hookSink {
	t.Helper()
	s := &hookSink{
		behaviour: map[string]hookBehaviour{},
		verifiers: map[string]*signature.Verifier{},
		jobOf:     map[string]string{},
		jobsSeen:  map[string]map[string]bool{},
		requests:  map[hookKey]int{},
		ok:        map[hookKey]int{},
		inflight:  map[hookKey]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *hookSink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	name := strings.TrimPrefix(r.URL.Path, "/")
	k := hookKey{endpoint: name, id: r.Header.Get(signature.HeaderID)}
	s.mu.Lock()
	if err != nil {
		// The sender died while sending: no webhook arrived.
		s.cutOff++
		s.mu.Unlock()
		http.Error(w, "incomplete body", http.StatusBadRequest)
		return
	}
	s.total++
	s.requests[k]++
	n := s.requests[k]
	b := s.behaviour[name]
	v := s.verifiers[name]
	s.inflight[k]++
	if v == nil {
		s.problems = append(s.problems, fmt.Sprintf("request for unknown endpoint %q (webhook-id %s)", name, k.id))
	} else {
		if verr := v.Verify(r.Header, body); verr != nil {
			s.problems = append(s.problems, fmt.Sprintf("%s %s: signature: %v", name, k.id, verr))
		}
		var env struct {
			Data struct {
				JobID string `json:"job_id"`
			} `json:"data"`
		}
		if jerr := json.Unmarshal(body, &env); jerr != nil || env.Data.JobID == "" {
			s.problems = append(s.problems, fmt.Sprintf("%s %s: body %s carries no job id", name, k.id, body))
		}
		if s.jobsSeen[k.id] == nil {
			s.jobsSeen[k.id] = map[string]bool{}
		}
		s.jobsSeen[k.id][env.Data.JobID] = true
	}
	s.mu.Unlock()

	if b.delay > 0 {
		// The endpoint does its work even when the sender has gone away.
		time.Sleep(b.delay)
	}
	status := http.StatusOK
	if b.firstFails && n == 1 {
		status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	if status < 300 {
		s.ok[k]++
	}
	if s.inflight[k]--; s.inflight[k] == 0 {
		delete(s.inflight, k)
	}
	s.mu.Unlock()
	w.WriteHeader(status)
}

// url is the URL of the endpoint named name.
func (s *hookSink) url(name string) string { return s.srv.URL + "/" + name }

// add registers an endpoint: how it answers and its signing secret.
func (s *hookSink) add(t *testing.T, name, secret string, b hookBehaviour) {
	t.Helper()
	v, err := signature.NewVerifier(secret)
	if err != nil {
		t.Fatalf("verifier of %s: %v", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behaviour[name] = b
	s.verifiers[name] = v
}

// accepted registers an accepted event: its message id and job id.
func (s *hookSink) accepted(msgID, jobID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobOf[msgID] = jobID
}

// inflightNow returns the deliveries whose requests have arrived and are
// not answered yet.
func (s *hookSink) inflightNow() []hookKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hookKey
	for k := range s.inflight {
		out = append(out, k)
	}
	return out
}

// waitDelivered waits until every delivery in want has been answered 2xx.
func (s *hookSink) waitDelivered(t *testing.T, want []hookKey) {
	t.Helper()
	testenv.WaitFor(t, faultWait, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		missing := 0
		var example hookKey
		for _, k := range want {
			if s.ok[k] == 0 {
				missing++
				example = k
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d deliveries not received yet, such as %v (%d requests so far)", missing, len(want), example, s.total)
		}
		return nil
	})
}

// sinkReport is what a hookSink saw, checked against the expected
// deliveries.
type sinkReport struct {
	// requests counts every complete request, cutOff the incomplete ones.
	requests int
	cutOff   int
	// perDelivery counts the requests of each delivery.
	perDelivery map[hookKey]int
	// duplicates counts the 2xx answers beyond a delivery's first (each
	// with the same webhook-id, by construction), over the deliveries in
	// duplicated (with their 2xx answers).
	duplicates int
	duplicated map[hookKey]int
	// unexpected are deliveries that were not expected.
	unexpected []hookKey
	// inflight counts requests not answered yet.
	inflight int
	// problems are requests that arrived wrong: bad signature, body of
	// another event, unknown endpoint or message.
	problems []string
}

func (s *hookSink) report(want []hookKey) sinkReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	expected := map[hookKey]bool{}
	for _, k := range want {
		expected[k] = true
	}
	r := sinkReport{
		requests:    s.total,
		cutOff:      s.cutOff,
		perDelivery: maps.Clone(s.requests),
		duplicated:  map[hookKey]int{},
		inflight:    len(s.inflight),
		problems:    slices.Clone(s.problems),
	}
	// One webhook-id, one event: every request of a message carried the
	// body of the event accepted under that id.
	for id, jobs := range s.jobsSeen {
		job, ok := s.jobOf[id]
		switch {
		case !ok:
			r.problems = append(r.problems, fmt.Sprintf("webhook-id %q is no accepted message", id))
		case len(jobs) != 1 || !jobs[job]:
			r.problems = append(r.problems, fmt.Sprintf("webhook-id %s carried the events of jobs %v, want only %s", id, slices.Sorted(maps.Keys(jobs)), job))
		}
	}
	for k := range s.requests {
		if !expected[k] {
			r.unexpected = append(r.unexpected, k)
		}
	}
	for k, n := range s.ok {
		if expected[k] && n > 1 {
			r.duplicates += n - 1
			r.duplicated[k] = n
		}
	}
	return r
}

// ingestPublisher publishes events through the ingest HTTP API without the
// testing.T, so that it can run in a goroutine.
type ingestPublisher struct {
	url   string
	token string
}

// publish sends one job.completed event of tenantID carrying jobID and
// returns the message id it was accepted under.
func (p ingestPublisher) publish(tenantID, jobID string) (string, error) {
	var accepted struct {
		MessageID string `json:"message_id"`
	}
	code, err := tryCall("POST", p.url+"/v1/events", map[string]string{"authorization": "Bearer " + p.token},
		map[string]any{"tenant_id": tenantID, "event_type": "job.completed", "data": jobData("job.completed", jobID)}, &accepted)
	if err != nil {
		return "", err
	}
	if code != http.StatusAccepted || accepted.MessageID == "" {
		return "", fmt.Errorf("publish %s: status %d, message id %q", jobID, code, accepted.MessageID)
	}
	return accepted.MessageID, nil
}

// tryCall is call without the testing.T: it returns what fails, and
// decodes only a successful answer.
func tryCall(method, url string, headers map[string]string, body any, out any) (int, error) {
	status, raw, err := request(method, url, headers, body)
	if err != nil {
		return 0, err
	}
	if out != nil && len(raw) > 0 && status < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return status, fmt.Errorf("%s %s: decode %q: %w", method, url, raw, err)
		}
	}
	return status, nil
}

// createEndpoints makes one endpoint per name, subscribed to
// job.completed, with a few requests at a time, and registers each in the
// sink with its secret.
func (c *cluster) createEndpoints(t *testing.T, tn tenant, sink *hookSink, names []string, behaviour func(name string) hookBehaviour) {
	t.Helper()
	tenantKey := map[string]string{"x-api-key": tn.Key}
	type made struct {
		name, secret string
		err          error
	}
	work := make(chan string)
	results := make(chan made)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for name := range work {
				var ep struct {
					ID string `json:"id"`
				}
				code, err := tryCall("POST", c.configURL()+"/v1/endpoints", tenantKey, map[string]any{"url": sink.url(name), "event_types": []string{"job.completed"}}, &ep)
				if err == nil && code != http.StatusCreated {
					err = fmt.Errorf("create endpoint %s: status %d", name, code)
				}
				var sec struct {
					Key string `json:"key"`
				}
				if err == nil {
					code, err = tryCall("GET", c.configURL()+"/v1/endpoints/"+ep.ID+"/secret", tenantKey, nil, &sec)
					if err == nil && code != http.StatusOK {
						err = fmt.Errorf("read secret of %s: status %d", ep.ID, code)
					}
				}
				results <- made{name: name, secret: sec.Key, err: err}
			}
		})
	}
	go func() {
		for _, n := range names {
			work <- n
		}
		close(work)
		wg.Wait()
		close(results)
	}()
	var errs []error
	for m := range results {
		if m.err != nil {
			errs = append(errs, m.err)
			continue
		}
		sink.add(t, m.name, m.secret, behaviour(m.name))
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("create endpoints: %v", err)
	}
}

// waitDisconnected waits until the NATS server has no client connection
// named name: a killed process's connection is closed and everything it
// had sent is processed.
func (c *cluster) waitDisconnected(t *testing.T, name string) {
	t.Helper()
	testenv.WaitFor(t, faultWait, func() error {
		cz, err := c.nats.Server().Connz(&server.ConnzOptions{})
		if err != nil {
			return err
		}
		for _, ci := range cz.Conns {
			if ci.Name == name {
				return fmt.Errorf("%s (cid %d) still connected", name, ci.Cid)
			}
		}
		return nil
	})
}

// checkEveryDelivery waits until every accepted event has reached every
// named endpoint and nothing more will be delivered, fails the test on a
// problem the sink saw or a delivery nobody expected, and returns the
// expected deliveries and the sink's report.
func (c *cluster) checkEveryDelivery(t *testing.T, js jetstream.JetStream, sink *hookSink, accepted, names []string) ([]hookKey, sinkReport) {
	t.Helper()
	var want []hookKey
	for _, id := range accepted {
		for _, n := range names {
			want = append(want, hookKey{endpoint: n, id: id})
		}
	}
	sink.waitDelivered(t, want)
	c.waitSettled(t, js)
	r := sink.report(want)
	for _, p := range r.problems {
		t.Error(p)
	}
	if len(r.unexpected) > 0 {
		t.Errorf("deliveries nobody expected: %v", r.unexpected)
	}
	return want, r
}

// waitSettled waits until nothing more will be delivered: the fanout
// consumer has nothing pending, DELIVERIES is empty and so is the retry
// schedule in Redis.
func (c *cluster) waitSettled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	q, err := retryq.New(c.redis.Client(t), retryq.Options{Partitions: faultPartitions})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	testenv.WaitFor(t, faultWait, func() error {
		if err := streams.Idle(ctx, js); err != nil {
			return err
		}
		for p := range faultPartitions {
			n, err := q.Len(ctx, p)
			if err != nil {
				return err
			}
			if n != 0 {
				return fmt.Errorf("retry schedule partition %d holds %d items", p, n)
			}
		}
		// Once more: an item leaves the schedule only once its return is
		// stored in DELIVERIES.
		if n := streamMsgs(t, js, streams.Deliveries); n != 0 {
			return fmt.Errorf("DELIVERIES holds %d deliveries", n)
		}
		return nil
	})
}

// backlog returns the deliveries handed out and not acked, over every
// partition consumer, and the items in the retry schedule.
func (c *cluster) backlog(t *testing.T, js jetstream.JetStream) (unacked int, scheduled int64) {
	t.Helper()
	ctx := context.Background()
	q, err := retryq.New(c.redis.Client(t), retryq.Options{Partitions: faultPartitions})
	if err != nil {
		t.Fatal(err)
	}
	for p := range faultPartitions {
		cons, err := js.Consumer(ctx, streams.Deliveries, streams.PartitionConsumer(p))
		if err != nil {
			t.Fatalf("consumer %s: %v", streams.PartitionConsumer(p), err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatalf("consumer %s info: %v", streams.PartitionConsumer(p), err)
		}
		unacked += info.NumAckPending
		n, err := q.Len(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		scheduled += n
	}
	return unacked, scheduled
}

// partitionPins returns the pin id of every partition consumer's priority
// group that has one.
func partitionPins(t *testing.T, js jetstream.JetStream) map[int]string {
	t.Helper()
	ctx := context.Background()
	pins := map[int]string{}
	for p := range faultPartitions {
		cons, err := js.Consumer(ctx, streams.Deliveries, streams.PartitionConsumer(p))
		if err != nil {
			t.Fatalf("consumer %s: %v", streams.PartitionConsumer(p), err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatalf("consumer %s info: %v", streams.PartitionConsumer(p), err)
		}
		for _, g := range info.PriorityGroups {
			if g.Group == streams.DeliveryGroup && g.PinnedClientID != "" {
				pins[p] = g.PinnedClientID
			}
		}
	}
	return pins
}

// TestDeliveryWorkerKilledMidFlight kills the delivery process with SIGKILL
// under a steady load, with attempts in flight to slow endpoints, retries of
// a failing endpoint in the Redis schedule and deliveries of a backlogged
// endpoint put off there, then starts it again: every accepted event reaches
// every endpoint. Requests in flight at the kill are sent again (the killed
// worker never saw their answers), with the same webhook-id; nothing else
// may arrive twice but for the same reason.
//
// The killed worker's partitions stay pinned to it for the pinned TTL (30 s,
// fixed by pkg/streams); the test unpins them once its connection is gone,
// as an operator would, so that the restarted worker takes them at once.
func TestDeliveryWorkerKilledMidFlight(t *testing.T) {
	buildServices(t)
	start := time.Now()
	c := newCluster(t, "info")
	c.startConfig(t)
	tn := c.createTenant(t, "acme")
	sink := newHookSink(t)
	behaviours := map[string]hookBehaviour{
		"fast-1":  {},
		"fast-2":  {},
		"slow-1":  {delay: 150 * time.Millisecond},
		"slow-2":  {delay: 150 * time.Millisecond},
		"flaky-1": {delay: 10 * time.Millisecond, firstFails: true},
	}
	names := slices.Sorted(maps.Keys(behaviours))
	c.createEndpoints(t, tn, sink, names, func(n string) hookBehaviour { return behaviours[n] })
	// Started after the configuration is made, so their first snapshot
	// has every endpoint.
	ing := c.startIngest(t)
	fan := c.startFanout(t, nil)
	deliveryEnv := map[string]string{
		// The killed worker's un-acked deliveries come back after 2 s and its
		// claims on the retry schedule are free again after 1 s.
		"PULSEHOOKS_ACK_WAIT":            "2s",
		"PULSEHOOKS_CLAIM_LEASE":         "1s",
		"PULSEHOOKS_RETRY_SCHEDULE":      "0s,100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s,1s,1s",
		"PULSEHOOKS_RETRY_POLL_INTERVAL": "50ms",
		"PULSEHOOKS_DEFER_DELAY":         "100ms",
		"PULSEHOOKS_RETRY_DELAY":         "200ms",
	}
	del := c.startDelivery(t, deliveryEnv)
	c.waitIngest(t, ing)
	waitReady(t, fan)
	waitReady(t, del)
	js := c.nats.JetStream(t)
	ready := time.Now()

	// A steady load: events accepted one after the other, every 5 ms.
	const events = 300
	pub := ingestPublisher{url: "http://" + c.ingestHTTP, token: c.operatorToken}
	var (
		loadMu   sync.Mutex
		accepted []string
		loadErr  error
	)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := range events {
			job := "job_" + strconv.Itoa(i)
			id, err := pub.publish(tn.ID, job)
			loadMu.Lock()
			if err != nil {
				loadErr = err
				loadMu.Unlock()
				return
			}
			accepted = append(accepted, id)
			loadMu.Unlock()
			sink.accepted(id, job)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	acceptedCount := func() int {
		loadMu.Lock()
		defer loadMu.Unlock()
		return len(accepted)
	}

	// Kill once a third of the load is in and the slow endpoints have
	// attempts in flight.
	testenv.WaitFor(t, faultWait, func() error {
		if n := acceptedCount(); n < events/3 {
			return fmt.Errorf("%d events accepted", n)
		}
		slow := 0
		for _, k := range sink.inflightNow() {
			if strings.HasPrefix(k.endpoint, "slow-") {
				slow++
			}
		}
		if slow < 4 {
			return fmt.Errorf("%d requests in flight at the slow endpoints", slow)
		}
		return nil
	})
	deadPins := partitionPins(t, js)
	del.kill(t)
	killedAt := time.Now()
	// Requests still unanswered now cannot have been answered to the killed
	// worker: each must be sent again.
	inflightAtKill := sink.inflightNow()
	acceptedAtKill := acceptedCount()
	unackedAtKill, scheduledAtKill := c.backlog(t, js)
	if len(inflightAtKill) == 0 {
		t.Fatal("no attempt was in flight when the delivery worker was killed")
	}
	c.waitDisconnected(t, "pulsehooks-delivery")

	del = c.startDelivery(t, deliveryEnv)
	waitReady(t, del)
	// Move the partitions still pinned to the dead worker to the new one.
	testenv.WaitFor(t, faultWait, func() error {
		var stuck []int
		for p, pin := range partitionPins(t, js) {
			if pin != deadPins[p] {
				continue
			}
			stuck = append(stuck, p)
			if err := unpin(js, p); err != nil {
				return err
			}
		}
		if len(stuck) > 0 {
			return fmt.Errorf("partitions %v were still pinned to the killed worker", stuck)
		}
		return nil
	})
	restartedAt := time.Now()

	select {
	case <-loadDone:
	case <-time.After(faultWait):
		t.Fatal("the load did not finish")
	}
	if loadErr != nil {
		t.Fatalf("load: %v", loadErr)
	}
	want, r := c.checkEveryDelivery(t, js, sink, accepted, names)
	finished := time.Now()
	if r.inflight != 0 {
		t.Errorf("%d requests still in flight after everything settled", r.inflight)
	}
	// The requests in flight at the kill were answered to nobody, so they
	// were sent again.
	redone := 0
	for _, k := range inflightAtKill {
		if got := r.perDelivery[k]; got < 2 {
			t.Errorf("%v was in flight at the kill and was sent %d times in all, want it sent again", k, got)
		} else {
			redone++
		}
	}
	t.Logf("%d events accepted (%d before the kill) to %d endpoints: %d deliveries, all received; %d requests in all (and %d cut off by the kill)",
		len(accepted), acceptedAtKill, len(names), len(want), r.requests, r.cutOff)
	t.Logf("at the kill: %d requests in flight (%d of them sent again since), %d deliveries un-acked in DELIVERIES, %d in the retry schedule",
		len(inflightAtKill), redone, unackedAtKill, scheduledAtKill)
	t.Logf("duplicates (2xx answers beyond the first, same webhook-id): %d, over %d deliveries: %v", r.duplicates, len(r.duplicated), r.duplicated)
	t.Logf("timings: set-up %v, load until the kill %v, restart %v, drain %v, total %v",
		ready.Sub(start).Round(time.Millisecond), killedAt.Sub(ready).Round(time.Millisecond),
		restartedAt.Sub(killedAt).Round(time.Millisecond), finished.Sub(restartedAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// unpin removes the pin of partition p's priority group.
func unpin(js jetstream.JetStream, p int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.Deliveries)
	if err != nil {
		return err
	}
	if err := s.UnpinConsumer(ctx, streams.PartitionConsumer(p), streams.DeliveryGroup); err != nil {
		return fmt.Errorf("unpin %s: %w", streams.PartitionConsumer(p), err)
	}
	return nil
}

// deliveryTap counts, on a core NATS subscription, every delivery publish
// fanout makes (stored or dropped as a duplicate by JetStream), by
// Nats-Msg-Id.
type deliveryTap struct {
	nc  *nats.Conn
	sub *nats.Subscription

	mu    sync.Mutex
	total int
	byID  map[string]int
	// armed: at the first publish that makes total reach at, onReach runs
	// (at reachedAt).
	at        int
	onReach   func()
	reachedAt time.Time
}

func newDeliveryTap(t *testing.T, c *cluster) *deliveryTap {
	t.Helper()
	d := &deliveryTap{nc: c.nats.Conn(t), byID: map[string]int{}}
	sub, err := d.nc.Subscribe(streams.DeliveriesPrefix+".>", func(m *nats.Msg) {
		id := m.Header.Get(jetstream.MsgIDHeader)
		d.mu.Lock()
		d.total++
		d.byID[id]++
		var f func()
		if d.onReach != nil && d.total >= d.at {
			f, d.onReach, d.reachedAt = d.onReach, nil, time.Now()
		}
		d.mu.Unlock()
		if f != nil {
			f()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	d.sub = sub
	if err := d.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return d
}

// catchUp waits until the tap has counted every message the server sent it
// before now: a round trip to the server, then until the subscription's
// callback has had each of them.
func (d *deliveryTap) catchUp(t *testing.T) {
	t.Helper()
	if err := d.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, faultWait, func() error {
		pending, _, err := d.sub.Pending()
		if err != nil {
			return err
		}
		delivered, err := d.sub.Delivered()
		if err != nil {
			return err
		}
		total, _ := d.counts()
		if pending != 0 || delivered != int64(total) {
			return fmt.Errorf("tap: %d messages queued, %d handed to the callback, %d counted", pending, delivered, total)
		}
		return nil
	})
}

// counts returns the publishes seen and the distinct Nats-Msg-Ids among them.
func (d *deliveryTap) counts() (total, distinct int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total, len(d.byID)
}

// arm runs f (once) at the publish that makes the total reach at.
func (d *deliveryTap) arm(at int, f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at, d.onReach = at, f
}

// disarm cancels arm and reports whether f had run, and when.
func (d *deliveryTap) disarm() (ran bool, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ran = d.onReach == nil
	d.onReach = nil
	return ran, d.reachedAt
}

// setFanoutAckWait changes the AckWait of the fanout consumer on the
// server and returns the one it had.
func setFanoutAckWait(t *testing.T, js jetstream.JetStream, ackWait time.Duration) time.Duration {
	t.Helper()
	ctx := context.Background()
	cons, err := js.Consumer(ctx, streams.Events, streams.FanoutConsumer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	was := cfg.AckWait
	cfg.AckWait = ackWait
	if _, err := js.UpdateConsumer(ctx, streams.Events, cfg); err != nil {
		t.Fatalf("set the AckWait of consumer %s to %v: %v", streams.FanoutConsumer, ackWait, err)
	}
	return was
}

// waitFanoutRedelivered waits until every event awaiting the fanout
// consumer's ack has been redelivered (or acked since).
func waitFanoutRedelivered(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	testenv.WaitFor(t, faultWait, func() error {
		ci, err := streams.FanoutInfo(ctx, js)
		if err != nil {
			return err
		}
		if ci.NumRedelivered < ci.NumAckPending {
			return fmt.Errorf("fanout: %d events awaiting ack, %d of them redelivered", ci.NumAckPending, ci.NumRedelivered)
		}
		return nil
	})
}

// waitFanoutIdle waits until the fanout consumer has nothing pending or
// awaiting its ack.
func waitFanoutIdle(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	testenv.WaitFor(t, faultWait, func() error {
		ci, err := streams.FanoutInfo(ctx, js)
		if err != nil {
			return err
		}
		if ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("fanout: %d events pending, %d awaiting ack", ci.NumPending, ci.NumAckPending)
		}
		return nil
	})
}

// lastSeq is the last sequence DELIVERIES stored: with nothing returning
// from the retry schedule, the number of deliveries ever stored.
func lastSeq(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), streams.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestFanoutKilledMidFanOut kills the fanout process with SIGKILL while it
// is publishing the deliveries of events to 1,000 endpoints, some stored
// and some not, and starts it again: the redone fan-out stores each
// delivery once (Nats-Msg-Id <msg_id>.<endpoint_id>), and every endpoint
// receives every event exactly once.
//
// A kill that comes too late (every delivery already published) proves
// nothing, so it is logged and tried again on new events; the test fails
// if no kill lands mid-fan-out.
//
// The server redelivers the killed fanout's events after the consumer's
// AckWait (30 s, fanout's default, not settable from the environment). The
// test shortens it on the server once the new fanout runs, as the time
// passing would, and restores it after the redo.
func TestFanoutKilledMidFanOut(t *testing.T) {
	buildServices(t)
	start := time.Now()
	c := newCluster(t, "info")
	c.startConfig(t)
	tn := c.createTenant(t, "bulk")
	sink := newHookSink(t)
	const endpoints = 1000
	names := make([]string, endpoints)
	for i := range names {
		names[i] = fmt.Sprintf("ep-%04d", i)
	}
	// More endpoints than the default quota of 100 per tenant.
	admin := map[string]string{"authorization": "Bearer " + c.adminToken}
	if code := call(t, "PATCH", c.configURL()+"/admin/v1/tenants/"+tn.ID, admin, map[string]any{"quotas": map[string]int{"endpoints": endpoints}}, nil); code != http.StatusOK {
		t.Fatalf("raise the endpoint quota of %s: status %d", tn.ID, code)
	}
	c.createEndpoints(t, tn, sink, names, func(string) hookBehaviour { return hookBehaviour{} })
	created := time.Now()
	ing := c.startIngest(t)
	fan := c.startFanout(t, nil)
	del := c.startDelivery(t, map[string]string{"PULSEHOOKS_RETRY_SCHEDULE": "0s,100ms,200ms,400ms,800ms,1s,1s,1s"})
	c.waitIngest(t, ing)
	waitReady(t, fan)
	waitReady(t, del)
	js := c.nats.JetStream(t)
	tap := newDeliveryTap(t, c)
	pub := ingestPublisher{url: "http://" + c.ingestHTTP, token: c.operatorToken}
	baseSeq := lastSeq(t, js)
	ready := time.Now()

	var accepted []string
	var killTimes []time.Duration
	landed := false
	const perRound = 3 // events per round, fanned out at once
	for round := 1; round <= 4 && !landed; round++ {
		roundStart, _ := tap.counts()
		roundSeq := lastSeq(t, js)
		total := perRound * endpoints
		// Kill at the publish that reaches a third of the round's
		// deliveries (less in later rounds, in case the fan-out is quick).
		at := roundStart + total/(3*round)
		proc := fan
		tap.arm(at, func() { _ = proc.cmd.Process.Signal(syscall.SIGKILL) })
		for i := range perRound {
			job := fmt.Sprintf("job_r%d_%d", round, i)
			id, err := pub.publish(tn.ID, job)
			if err != nil {
				t.Fatal(err)
			}
			sink.accepted(id, job)
			accepted = append(accepted, id)
		}
		select {
		case <-proc.done:
		case <-time.After(faultWait):
			t.Fatalf("round %d: fanout not killed within %v (%d publishes seen)", round, faultWait, func() int { n, _ := tap.counts(); return n }())
		}
		ran, killed := tap.disarm()
		if !ran {
			t.Fatalf("round %d: fanout exited by itself: %s", round, proc.out.String())
		}
		// Everything the dead process sent has reached the server.
		c.waitDisconnected(t, "pulsehooks-fanout")
		tap.catchUp(t)
		seen, _ := tap.counts()
		publishedAtKill := seen - roundStart
		storedAtKill := lastSeq(t, js) - roundSeq
		killTimes = append(killTimes, killed.Sub(ready).Round(time.Millisecond))
		if publishedAtKill < total && storedAtKill > 0 {
			landed = true
			t.Logf("round %d: fanout killed mid-fan-out, after it had published %d of the %d deliveries (DELIVERIES had stored %d of them when its connection was gone)", round, publishedAtKill, total, storedAtKill)
		} else {
			t.Logf("round %d: the kill missed the fan-out (%d of %d deliveries published, %d stored); trying again on new events", round, publishedAtKill, total, storedAtKill)
		}

		fan = c.startFanout(t, nil)
		waitReady(t, fan)
		// The dead fanout's events are redelivered once their AckWait
		// ends; the AckWait is restored as soon as they are, so the redo
		// itself runs under the real one.
		ackWait := setFanoutAckWait(t, js, 2*time.Second)
		waitFanoutRedelivered(t, js)
		setFanoutAckWait(t, js, ackWait)
		waitFanoutIdle(t, js)
	}
	if !landed {
		t.Fatalf("no kill landed mid-fan-out in %d rounds: the fault was not exercised", len(killTimes))
	}
	redone := time.Now()

	want, r := c.checkEveryDelivery(t, js, sink, accepted, names)
	finished := time.Now()
	if r.duplicates != 0 || r.requests != len(want) || r.cutOff != 0 {
		t.Errorf("endpoints got %d requests (%d duplicates: %v; %d incomplete), want exactly one per delivery, %d", r.requests, r.duplicates, r.duplicated, r.cutOff, len(want))
	}
	// The redo published the deliveries again; JetStream stored each once.
	tap.catchUp(t)
	published, distinct := tap.counts()
	stored := lastSeq(t, js) - baseSeq
	if distinct != len(want) {
		t.Errorf("fanout published %d distinct deliveries, want %d", distinct, len(want))
	}
	if published <= distinct {
		t.Errorf("fanout published %d deliveries, %d distinct: the redo published nothing again", published, distinct)
	}
	attempts := streamMsgs(t, js, streams.Attempts)
	if attempts == uint64(len(want)) {
		// Every attempt succeeded at once, so nothing came back from the
		// retry schedule: DELIVERIES stored exactly one of each.
		if stored != uint64(len(want)) {
			t.Errorf("DELIVERIES stored %d deliveries, want each of the %d once", stored, len(want))
		}
	} else {
		t.Logf("%d attempts for %d deliveries (some failed and were retried), so DELIVERIES' %d stored include returns from the schedule", attempts, len(want), stored)
	}
	t.Logf("%d events to %d endpoints: %d deliveries received exactly once; fanout published %d (%d distinct), DELIVERIES stored %d; kills at %v",
		len(accepted), endpoints, len(want), published, distinct, stored, killTimes)
	t.Logf("timings: endpoints %v, services %v, kill and redo %v, delivery %v, total %v",
		created.Sub(start).Round(time.Millisecond), ready.Sub(created).Round(time.Millisecond),
		redone.Sub(ready).Round(time.Millisecond), finished.Sub(redone).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
