package standalone_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/grpcx"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
	"github.com/pulsehooks/pulsehooks/services/config"
	"github.com/pulsehooks/pulsehooks/services/delivery"
	"github.com/pulsehooks/pulsehooks/services/fanout"
	"github.com/pulsehooks/pulsehooks/services/ingest"
)

// pipelineAckWait is the ack wait of fanout's and delivery's consumers in
// these tests: what a server crash leaves unacked comes back after it.
const pipelineAckWait = 5 * time.Second

// pipeline is the production shape inside the test process: config, ingest,
// fanout and delivery each built on its own NATS connection, config and
// ingest on fixed listeners, so any of them can be stopped gracefully (its
// context cancelled, as SIGTERM does in its main) and started again while
// the others run.
type pipeline struct {
	t        *testing.T
	natsURL  string
	so       streams.Options
	log      *slog.Logger
	rdb      *redis.Client
	grpcConn *grpc.ClientConn

	adminToken, internalToken, operatorToken string
	masterKey                                []byte
	configHTTP, configGRPC, ingestHTTP       string
	attemptLogDir                            string

	mu   sync.Mutex
	svcs map[string]*runningService
}

// runningService is one started service.
type runningService struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	ready  func() bool
}

// pipelineServices are the services in the order they start.
var pipelineServices = []string{"config", "ingest", "fanout", "delivery"}

// newPipeline starts every service against natsURL (one server or a
// cluster's URL list) with streams at replicas, and a redis-server.
func newPipeline(t *testing.T, natsURL string, replicas int) *pipeline {
	t.Helper()
	p := &pipeline{
		t:             t,
		natsURL:       natsURL,
		so:            streams.Options{Replicas: replicas, Partitions: 4},
		log:           testLogger(t),
		adminToken:    randomToken(t),
		internalToken: randomToken(t),
		operatorToken: randomToken(t),
		masterKey:     make([]byte, 32),
		configHTTP:    freeAddr(t),
		configGRPC:    freeAddr(t),
		ingestHTTP:    freeAddr(t),
		attemptLogDir: t.TempDir(),
		svcs:          map[string]*runningService{},
	}
	_, _ = rand.Read(p.masterKey)
	opts, err := redis.ParseURL(testenv.StartRedis(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	p.rdb = redis.NewClient(opts)
	t.Cleanup(func() { _ = p.rdb.Close() })
	if p.grpcConn, err = grpcx.Dial(p.configGRPC, p.internalToken, noopTP()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.grpcConn.Close() })
	t.Cleanup(func() {
		for i := len(pipelineServices) - 1; i >= 0; i-- {
			p.stop(pipelineServices[i])
		}
	})
	for _, name := range pipelineServices {
		p.start(name)
	}
	return p
}

func noopTP() trace.TracerProvider { return noop.NewTracerProvider() }

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// start builds the named service on a new NATS connection, runs it and
// waits until it is ready.
func (p *pipeline) start(name string) {
	t := p.t
	t.Helper()
	log := p.log.With("component", name)
	nc, err := natsx.Connect(p.natsURL, "pulsehooks-"+name, log)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	newCtx, newCancel := context.WithTimeout(ctx, 60*time.Second)
	defer newCancel()
	client := grpcx.ConfigClient(p.grpcConn)
	tp := noopTP()
	var (
		run   func(context.Context) error
		ready func() bool
	)
	switch name {
	case "config":
		var svc *config.Service
		svc, err = config.New(newCtx, config.Config{
			HTTPAddr: p.configHTTP, GRPCAddr: p.configGRPC,
			AdminToken: p.adminToken, InternalToken: p.internalToken, MasterKey: p.masterKey,
			Replicas: p.so.Replicas, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			AttemptLogDir: p.attemptLogDir,
		}, config.Deps{NATS: nc, Logger: log, TracerProvider: tp})
		if err == nil {
			run = svc.Run
			ready = func() bool { return httpOK("http://" + p.configHTTP + "/readyz") }
		}
	case "ingest":
		var svc *ingest.Service
		svc, err = ingest.New(newCtx, ingest.Config{HTTPAddr: p.ingestHTTP, OperatorToken: p.operatorToken, Streams: p.so, DrainPeriod: -1},
			ingest.Deps{NATS: nc, Config: client, Redis: p.rdb, Logger: log, TracerProvider: tp})
		if err == nil {
			run, ready = svc.Run, svc.Ready
		}
	case "fanout":
		var svc *fanout.Service
		svc, err = fanout.New(newCtx, fanout.Config{Streams: p.so, AckWait: pipelineAckWait, DeliveryAckWait: pipelineAckWait},
			fanout.Deps{NATS: nc, Config: client, Logger: log, TracerProvider: tp})
		if err == nil {
			run, ready = svc.Run, svc.Ready
		}
	case "delivery":
		var svc *delivery.Service
		svc, err = delivery.New(newCtx, delivery.Config{
			Streams: p.so, AckWait: pipelineAckWait,
			AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			RetryDelay:    200 * time.Millisecond,
			Schedule:      []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond},
		}, delivery.Deps{NATS: nc, Redis: p.rdb, Config: client, Logger: log, TracerProvider: tp})
		if err == nil {
			run, ready = svc.Run, svc.Ready
		}
	default:
		t.Fatalf("no service %q", name)
	}
	if err != nil {
		cancel()
		nc.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	rs := &runningService{nc: nc, cancel: cancel, done: make(chan error, 1), ready: ready}
	go func() { rs.done <- run(ctx) }()
	p.mu.Lock()
	p.svcs[name] = rs
	p.mu.Unlock()
	testenv.WaitFor(t, 60*time.Second, func() error {
		select {
		case err := <-rs.done:
			rs.done <- err
			t.Fatalf("%s stopped at start: %v", name, err)
		default:
		}
		if !rs.ready() {
			return fmt.Errorf("%s not ready", name)
		}
		return nil
	})
}

// stop cancels the named service's context, as its main does on SIGTERM,
// waits for Run to return, and closes its NATS connection.
func (p *pipeline) stop(name string) {
	p.mu.Lock()
	rs := p.svcs[name]
	delete(p.svcs, name)
	p.mu.Unlock()
	if rs == nil {
		return
	}
	rs.cancel()
	stopping := time.Now()
	defer func() {
		if d := time.Since(stopping); d > 2*time.Second {
			p.t.Logf("%s took %v to stop", name, d.Round(time.Millisecond))
		}
	}()
	select {
	case err := <-rs.done:
		if err != nil {
			p.t.Errorf("%s Run = %v, want nil after a graceful stop", name, err)
		}
	case <-time.After(45 * time.Second):
		p.t.Errorf("%s did not stop within 45s", name)
	}
	rs.nc.Close()
}

// restart stops the named service gracefully and starts it again.
func (p *pipeline) restart(name string) {
	p.t.Helper()
	p.stop(name)
	p.start(name)
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// setUp creates a tenant with endpoints, one per name, at hooks; each
// subscribes to every event type.
func (p *pipeline) setUp(t *testing.T, hooks *hookLog, names ...string) (tenantID string) {
	t.Helper()
	base := "http://" + p.configHTTP
	admin := map[string]string{"authorization": "Bearer " + p.adminToken}
	tenantID = "tenant-ha"
	if code := call(t, "POST", base+"/admin/v1/tenants", admin, map[string]string{"id": tenantID, "name": "HA"}, nil); code != http.StatusCreated {
		t.Fatalf("create tenant: status %d", code)
	}
	var key struct {
		Key string `json:"key"`
	}
	if code := call(t, "POST", base+"/admin/v1/tenants/"+tenantID+"/api-keys", admin, map[string]string{"name": "test"}, &key); code != http.StatusCreated {
		t.Fatalf("create API key: status %d", code)
	}
	for _, name := range names {
		var ep struct {
			ID string `json:"id"`
		}
		if code := call(t, "POST", base+"/v1/endpoints", map[string]string{"x-api-key": key.Key}, map[string]any{"url": hooks.url(name)}, &ep); code != http.StatusCreated {
			t.Fatalf("create endpoint %s: status %d", name, code)
		}
		hooks.endpoints[ep.ID] = name
	}
	// Every service's view must hold the endpoints before the load starts
	// (fanout matches nobody it has not heard of): a probe event reaches
	// them all.
	probe := &publisher{url: "http://" + p.ingestHTTP, token: p.operatorToken, tenant: tenantID, retry: true}
	probe.init()
	probe.deadline = 20 * time.Second
	probe.publish("job_probe")
	if len(probe.acceptedIDs()) != 1 {
		t.Fatalf("probe event not accepted: last answer %d %s", probe.answered["job_probe"], probe.lastBody)
	}
	for _, name := range names {
		hooks.waitReceived(t, name, probe.acceptedIDs())
	}
	return tenantID
}

// hookLog is the endpoints' receiver: it answers 200 and counts each
// endpoint's requests per webhook-id.
type hookLog struct {
	srv       *httptest.Server
	endpoints map[string]string // endpoint id → name, filled before the load
	// delay is how long each answer takes: with a slow endpoint, attempts
	// are in flight (and their records and acks to come) whenever NATS
	// breaks.
	delay time.Duration
	// inflight, if set, counts the requests received and not yet answered.
	inflight *atomic.Int64

	mu  sync.Mutex
	got map[string]map[string]int // name → webhook-id → requests
}

func newHookLog(t *testing.T, delay time.Duration) *hookLog {
	t.Helper()
	h := &hookLog{endpoints: map[string]string{}, got: map[string]map[string]int{}, delay: delay}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if h.inflight != nil {
			h.inflight.Add(1)
			defer h.inflight.Add(-1)
		}
		time.Sleep(h.delay)
		name := strings.TrimPrefix(r.URL.Path, "/")
		h.mu.Lock()
		if h.got[name] == nil {
			h.got[name] = map[string]int{}
		}
		h.got[name][r.Header.Get("webhook-id")]++
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookLog) url(name string) string { return h.srv.URL + "/" + name }

// count is how many requests the named endpoint got for msgID.
func (h *hookLog) count(name, msgID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[name][msgID]
}

// waitReceived waits until the named endpoint got every message in ids.
func (h *hookLog) waitReceived(t *testing.T, name string, ids []string) {
	t.Helper()
	testenv.WaitFor(t, 40*time.Second, func() error {
		missing := 0
		for _, id := range ids {
			if h.count(name, id) == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("endpoint %s is missing %d of %d messages", name, missing, len(ids))
		}
		return nil
	})
}

// publisher sends job.completed events over ingest's HTTP API, each with
// its own Idempotency-Key (the job id). With retry it sends an event again,
// with the same key, until it is answered 2xx — what the API documentation
// asks of publishers; without it every event is sent once and its answer
// kept.
type publisher struct {
	url, token, tenant string
	retry              bool
	// deadline bounds the retries of one event (default a minute).
	deadline time.Duration
	client   *http.Client
	// lastBody is the body of the last error answer, for failure messages.
	lastBody string

	mu       sync.Mutex
	accepted map[string]string // job id → message id
	answered map[string]int    // job id → the status of an error answer (-1: no answer)
	errors   int               // error answers, retried ones included
}

func (pb *publisher) init() {
	pb.client = &http.Client{Timeout: 10 * time.Second}
	pb.accepted, pb.answered = map[string]string{}, map[string]int{}
}

// publish sends one event for jobID (until accepted, with retry).
func (pb *publisher) publish(jobID string) {
	body, _ := json.Marshal(map[string]any{"tenant_id": pb.tenant, "event_type": "job.completed", "data": jobData("job.completed", jobID)})
	deadline := time.Now().Add(cmp.Or(pb.deadline, time.Minute))
	for {
		status, msgID := pb.send(jobID, body)
		pb.mu.Lock()
		if status/100 == 2 {
			pb.accepted[jobID] = msgID
			delete(pb.answered, jobID)
			pb.mu.Unlock()
			return
		}
		pb.errors++
		pb.answered[jobID] = status
		pb.mu.Unlock()
		if !pb.retry || time.Now().After(deadline) || (status/100 == 4 && status != http.StatusTooManyRequests) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// send makes one request; status is -1 when no answer came.
func (pb *publisher) send(jobID string, body []byte) (status int, msgID string) {
	req, err := http.NewRequest(http.MethodPost, pb.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return -1, ""
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("authorization", "Bearer "+pb.token)
	req.Header.Set("idempotency-key", jobID)
	resp, err := pb.client.Do(req)
	if err != nil {
		return -1, ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		MessageID string `json:"message_id"`
	}
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode/100 != 2 {
		pb.mu.Lock()
		pb.lastBody = string(raw)
		pb.mu.Unlock()
	}
	return resp.StatusCode, out.MessageID
}

// run publishes from workers goroutines, each one event every interval,
// until ctx ends; it returns when every publish has finished.
func (pb *publisher) run(ctx context.Context, workers int, interval time.Duration) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				pb.publish(fmt.Sprintf("job_%d_%d", w, n))
			}
		})
	}
	wg.Wait()
}

// acceptedIDs are the message ids of the accepted events.
func (pb *publisher) acceptedIDs() []string {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	ids := make([]string, 0, len(pb.accepted))
	for _, id := range pb.accepted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// storedJobs reads EVENTS from its start and counts the events of each job.
func storedJobs(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	jobs := map[string]int{}
	for _, raw := range readStream(t, js, streams.Events) {
		ev := &eventv1.Event{}
		if err := proto.Unmarshal(raw.Data, ev); err != nil {
			t.Fatalf("decode event: %v", err)
		}
		var body struct {
			Data struct {
				JobID string `json:"job_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev.GetPayload(), &body); err != nil {
			t.Fatalf("decode event payload %q: %v", ev.GetPayload(), err)
		}
		jobs[body.Data.JobID]++
	}
	return jobs
}

// readStream returns every message stored in the named stream.
func readStream(t *testing.T, js jetstream.JetStream, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	var out []*jetstream.RawStreamMsg
	testenv.WaitFor(t, 30*time.Second, func() error {
		out = out[:0]
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			raw, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("get %s %d: %w", name, seq, err)
			}
			out = append(out, raw)
		}
		return nil
	})
	return out
}

// ledger is the exact account of a run.
type ledger struct {
	accepted, deliveries, lost, duplicated int
	// requests is what the endpoints received in all; records the
	// distinct attempt records in ATTEMPTS, and missing the requests with
	// no record (per message and endpoint), extra the records with no
	// request.
	requests, records, missing, extra int
	// repeatedRecords counts records stored twice under one attempt id.
	repeatedRecords int
}

func (l ledger) String() string {
	return fmt.Sprintf("%d events accepted, %d deliveries: %d lost, %d duplicated; %d requests, %d attempt records (%d missing, %d extra, %d stored twice)",
		l.accepted, l.deliveries, l.lost, l.duplicated, l.requests, l.records, l.missing, l.extra, l.repeatedRecords)
}

// account waits until every accepted event reached every endpoint and the
// pipeline is idle, then counts lost and duplicated deliveries and compares
// ATTEMPTS with the requests the endpoints received.
func account(t *testing.T, js jetstream.JetStream, pb *publisher, hooks *hookLog) ledger {
	t.Helper()
	ids := pb.acceptedIDs()
	names := make([]string, 0, len(hooks.endpoints))
	for _, name := range hooks.endpoints {
		names = append(names, name)
		hooks.waitReceived(t, name, ids)
	}
	settled(t, js)
	l := ledger{accepted: len(ids)}
	for _, name := range names {
		for _, id := range ids {
			l.deliveries++
			switch n := hooks.count(name, id); {
			case n == 0:
				l.lost++
			case n > 1:
				l.duplicated++
			}
		}
	}
	perDelivery := map[string]int{} // name/msg → distinct records
	seen := map[string]bool{}
	for _, raw := range readStream(t, js, streams.Attempts) {
		a := &eventv1.Attempt{}
		if err := proto.Unmarshal(raw.Data, a); err != nil {
			t.Fatalf("decode attempt: %v", err)
		}
		if seen[a.GetId()] {
			l.repeatedRecords++
			continue
		}
		seen[a.GetId()] = true
		l.records++
		perDelivery[hooks.endpoints[a.GetEndpointId()]+"/"+a.GetMessageId()]++
	}
	hooks.mu.Lock()
	for name, byMsg := range hooks.got {
		for id, n := range byMsg {
			l.requests += n
			if r := perDelivery[name+"/"+id]; r < n {
				l.missing += n - r
			}
		}
	}
	for key, r := range perDelivery {
		name, id, _ := strings.Cut(key, "/")
		if n := hooks.got[name][id]; r > n {
			l.extra += r - n
		}
	}
	hooks.mu.Unlock()
	return l
}

// checkLedger fails the test unless nothing was lost and every request has
// exactly one attempt record.
func checkLedger(t *testing.T, l ledger) {
	t.Helper()
	t.Log(l)
	if l.accepted == 0 {
		t.Fatal("no event was accepted: the load did not run")
	}
	if l.lost != 0 || l.missing != 0 || l.extra != 0 || l.repeatedRecords != 0 {
		t.Errorf("%v; want 0 lost, 0 attempt records missing, extra or stored twice", l)
	}
}

// checkStoredOnce fails the test unless EVENTS holds every accepted job
// exactly once and nothing else but the probe.
func checkStoredOnce(t *testing.T, js jetstream.JetStream, pb *publisher) {
	t.Helper()
	jobs := storedJobs(t, js)
	pb.mu.Lock()
	defer pb.mu.Unlock()
	twice, absent := 0, 0
	for job := range pb.accepted {
		switch jobs[job] {
		case 0:
			absent++
		case 1:
		default:
			twice++
		}
	}
	if twice != 0 || absent != 0 {
		t.Errorf("of %d accepted events, %d are stored more than once and %d not at all; want each stored once", len(pb.accepted), twice, absent)
	}
	for job, n := range jobs {
		if _, ok := pb.accepted[job]; !ok && job != "job_probe" {
			t.Errorf("EVENTS holds %d events of job %s, which was never accepted", n, job)
		}
	}
}
