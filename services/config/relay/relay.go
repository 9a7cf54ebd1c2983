// Package relay relays deliveries of relay endpoints to `pulsehooks listen`
// clients. A relay endpoint is an ordinary endpoint whose URL is the config
// service's relay route, <relay base>/relay/v1/<endpoint id>, so filters,
// retries and the attempt log apply as to any other. The client holds a
// WebSocket to a config replica (Attach); that replica subscribes to
// pulsehooks.relay.<endpoint id> on NATS. Delivery POSTs to the relay route
// on any replica (ServeDelivery), which makes a NATS request on that
// subject; the replica holding the socket checks the webhook signature
// against the endpoint's secrets, forwards the request as a Frame, and
// replies with the local server's status, headers and body, which become the
// HTTP answer and so the attempt's result. With no listener connected the
// request has no responders and is answered 503.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/signature"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// Tuning of the relay.
const (
	// SubjectPrefix + endpoint id is the NATS subject of an endpoint's
	// listener.
	SubjectPrefix = "pulsehooks.relay."
	// queueGroup makes one of several listeners of an endpoint take each
	// request.
	queueGroup = "relay"
	// defaultTimeout is the timeout of endpoints that set none; maxTimeout
	// bounds any (as delivery does).
	defaultTimeout = 15 * time.Second
	maxTimeout     = 30 * time.Second
	// pingInterval keeps idle connections alive through proxies and finds
	// dead clients.
	pingInterval = 20 * time.Second
	// maxInFlight bounds the requests one listener forwards at once.
	maxInFlight = 64
)

// EndpointFunc returns a tenant's endpoint with its secrets in clear text,
// or an error (for example when it was deleted).
type EndpointFunc func(ctx context.Context, tenantID, endpointID string) (*configv1.Endpoint, error)

// Deps are what the relay uses.
type Deps struct {
	// NATS carries requests between config replicas; required.
	NATS *nats.Conn
	// Endpoint looks endpoints up; required.
	Endpoint EndpointFunc
	Logger   *slog.Logger
}

// Relay is the config service's side of `pulsehooks listen`.
type Relay struct {
	nc       *nats.Conn
	endpoint EndpointFunc
	log      *slog.Logger

	mu        sync.Mutex
	listeners map[*listener]struct{}
	closed    bool
}

// New returns a relay. It starts nothing; Attach serves listeners and
// Shutdown disconnects them.
func New(deps Deps) (*Relay, error) {
	if deps.NATS == nil || deps.Endpoint == nil {
		return nil, errors.New("relay: NATS and Endpoint are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{nc: deps.NATS, endpoint: deps.Endpoint, log: deps.Logger, listeners: map[*listener]struct{}{}}, nil
}

// Shutdown disconnects every listener with "going away", so clients
// reconnect to another replica, and refuses new ones.
func (rl *Relay) Shutdown() {
	rl.mu.Lock()
	rl.closed = true
	ls := make([]*listener, 0, len(rl.listeners))
	for l := range rl.listeners {
		ls = append(ls, l)
	}
	rl.mu.Unlock()
	for _, l := range ls {
		_ = l.conn.Close(websocket.StatusGoingAway, "config service shutting down; reconnect")
	}
}

// Attach upgrades the request to a WebSocket and serves it as the listener of
// a tenant's relay endpoint until the connection ends. The caller has
// authenticated the tenant and checked that the endpoint is its relay
// endpoint.
func (rl *Relay) Attach(w http.ResponseWriter, r *http.Request, tenantID, endpointID string) {
	// The config HTTP server's read and write timeouts would end the
	// hijacked connection; it lives as long as the client keeps it.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		rl.log.InfoContext(r.Context(), "relay: websocket upgrade failed", "endpoint_id", endpointID, "err", err)
		return
	}
	conn.SetReadLimit(2 * MaxBodyBytes)
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	l := &listener{
		rl: rl, conn: conn, tenantID: tenantID, endpointID: endpointID,
		pending: map[string]chan Frame{}, slots: make(chan struct{}, maxInFlight),
	}
	if !rl.add(l) {
		_ = conn.Close(websocket.StatusGoingAway, "config service shutting down; reconnect")
		return
	}
	defer rl.remove(l)
	err = l.serve(ctx)
	rl.log.InfoContext(ctx, "relay listener disconnected", "tenant_id", tenantID, "endpoint_id", endpointID, "err", err)
}

func (rl *Relay) add(l *listener) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closed {
		return false
	}
	rl.listeners[l] = struct{}{}
	return true
}

func (rl *Relay) remove(l *listener) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	delete(rl.listeners, l)
}

// ServeDelivery is the relay route, /relay/v1/{id}: it relays the request to
// the endpoint's listener, on whichever replica holds it, and answers with
// the local server's answer. No listener is 503; a listener that does not
// answer in time is 504; a local server it cannot reach is 502.
func (rl *Relay) ServeDelivery(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ids.Valid(ids.Endpoint, id) { // also keeps the NATS subject to one plain token
		plain(w, http.StatusNotFound, "relay: no relay endpoint "+strconv.Quote(id))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		plain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("relay: request body over %d bytes", MaxBodyBytes))
		return
	}
	req := Frame{Type: FrameRequest, EndpointID: id, Method: r.Method, Headers: CleanHeaders(r.Header), Body: body}
	data, err := json.Marshal(req)
	if err != nil {
		plain(w, http.StatusInternalServerError, "relay: "+err.Error())
		return
	}
	// The listener's replica enforces the endpoint's own timeout and answers
	// 504 then; this only bounds a replica that vanished mid-request.
	ctx, cancel := context.WithTimeout(r.Context(), maxTimeout+5*time.Second)
	defer cancel()
	msg, err := rl.nc.RequestWithContext(ctx, SubjectPrefix+id, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		plain(w, http.StatusServiceUnavailable, "no listener connected for endpoint "+id+" (run `pulsehooks listen`)")
		return
	case err != nil:
		plain(w, http.StatusGatewayTimeout, "relay: no answer from the listener's config replica: "+err.Error())
		return
	}
	var resp Frame
	if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.Status < 200 || resp.Status > 599 {
		plain(w, http.StatusBadGateway, "relay: malformed answer from the listener's config replica")
		return
	}
	for name, vs := range CleanHeaders(resp.Headers) {
		w.Header()[name] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// plain answers a text body; relay errors end up in attempt logs, where
// plain text reads best.
func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// errorFrame is a response the relay makes itself.
func errorFrame(status int, msg string) Frame {
	return Frame{Type: FrameResponse, Status: status, Headers: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, Body: []byte(msg + "\n")}
}

// listener is one connected `pulsehooks listen` client.
type listener struct {
	rl                   *Relay
	conn                 *websocket.Conn
	tenantID, endpointID string
	slots                chan struct{}
	nextID               atomic.Uint64

	mu      sync.Mutex
	pending map[string]chan Frame
	done    bool
}

// serve subscribes to the endpoint's subject and reads the client's answers
// until the connection ends.
func (l *listener) serve(ctx context.Context) error {
	hello, _ := json.Marshal(Frame{Type: FrameHello, EndpointID: l.endpointID})
	if err := l.conn.Write(ctx, websocket.MessageText, hello); err != nil {
		return fmt.Errorf("write hello: %w", err)
	}
	sub, err := l.rl.nc.QueueSubscribe(SubjectPrefix+l.endpointID, queueGroup, func(m *nats.Msg) {
		select {
		case l.slots <- struct{}{}:
		default:
			l.respond(m, errorFrame(http.StatusServiceUnavailable, "relay: listener busy"))
			return
		}
		go func() {
			defer func() { <-l.slots }()
			l.respond(m, l.forward(ctx, m.Data))
		}()
	})
	if err != nil {
		_ = l.conn.Close(websocket.StatusInternalError, "relay unavailable")
		return fmt.Errorf("subscribe %s: %w", SubjectPrefix+l.endpointID, err)
	}
	// Flush so the subscription is in place when the client hears it is
	// connected.
	if err := l.rl.nc.FlushWithContext(ctx); err != nil {
		l.rl.log.WarnContext(ctx, "relay: flush subscription", "err", err)
	}
	defer l.stop(sub)
	go l.ping(ctx)
	l.rl.log.InfoContext(ctx, "relay listener connected", "tenant_id", l.tenantID, "endpoint_id", l.endpointID)
	for {
		typ, data, err := l.conn.Read(ctx)
		if err != nil {
			return err
		}
		var f Frame
		if typ != websocket.MessageText || json.Unmarshal(data, &f) != nil || f.Type != FrameResponse {
			_ = l.conn.Close(websocket.StatusUnsupportedData, "expected JSON response frames")
			return errors.New("relay: client sent an unexpected frame")
		}
		l.mu.Lock()
		ch, ok := l.pending[f.ID]
		delete(l.pending, f.ID)
		l.mu.Unlock()
		if ok {
			ch <- f // buffered
		}
	}
}

// stop unsubscribes first, so no new request lands here, then fails the
// requests still waiting.
func (l *listener) stop(sub *nats.Subscription) {
	_ = sub.Unsubscribe()
	l.mu.Lock()
	l.done = true
	for id, ch := range l.pending {
		ch <- errorFrame(http.StatusBadGateway, "relay: listener disconnected")
		delete(l.pending, id)
	}
	l.mu.Unlock()
	_ = l.conn.CloseNow()
}

func (l *listener) ping(ctx context.Context) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, pingInterval)
			err := l.conn.Ping(pctx)
			cancel()
			if err != nil {
				_ = l.conn.CloseNow()
				return
			}
		}
	}
}

func (l *listener) respond(m *nats.Msg, f Frame) {
	f.Type = FrameResponse
	data, err := json.Marshal(f)
	if err != nil {
		data, _ = json.Marshal(errorFrame(http.StatusBadGateway, "relay: "+err.Error()))
	}
	if err := m.Respond(data); err != nil {
		l.rl.log.Warn("relay: respond", "endpoint_id", l.endpointID, "err", err)
	}
}

// forward checks one relayed request and sends it to the client, returning
// its answer.
func (l *listener) forward(ctx context.Context, data []byte) Frame {
	var req Frame
	if err := json.Unmarshal(data, &req); err != nil {
		return errorFrame(http.StatusBadRequest, "relay: malformed request")
	}
	ep, err := l.rl.endpoint(ctx, l.tenantID, l.endpointID)
	if err != nil {
		return errorFrame(http.StatusNotFound, "relay: endpoint "+l.endpointID+" not found")
	}
	// The relay route is reachable by anyone who can reach the config
	// service, and any tenant could name it as an endpoint URL: only
	// requests signed with this endpoint's secret reach its listener.
	if err := verify(ep, req); err != nil {
		return errorFrame(http.StatusUnauthorized, "relay: refused, not signed for endpoint "+l.endpointID+": "+err.Error())
	}
	timeout := defaultTimeout
	if ms := ep.GetTimeoutMs(); ms > 0 {
		timeout = min(time.Duration(ms)*time.Millisecond, maxTimeout)
	}
	id := strconv.FormatUint(l.nextID.Add(1), 10)
	ch := make(chan Frame, 1)
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return errorFrame(http.StatusBadGateway, "relay: listener disconnected")
	}
	l.pending[id] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.pending, id)
		l.mu.Unlock()
	}()
	out, _ := json.Marshal(Frame{Type: FrameRequest, ID: id, Method: req.Method, Headers: req.Headers, Body: req.Body, TimeoutMS: timeout.Milliseconds()})
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := l.conn.Write(tctx, websocket.MessageText, out); err != nil {
		return errorFrame(http.StatusBadGateway, "relay: send to listener: "+err.Error())
	}
	select {
	case resp := <-ch:
		switch {
		case resp.TimedOut:
			return errorFrame(http.StatusGatewayTimeout, fmt.Sprintf("relay: the local server did not answer within %v", timeout))
		case resp.Error != "":
			return errorFrame(http.StatusBadGateway, "pulsehooks listen could not get an answer from the local server: "+resp.Error)
		case resp.Status < 200 || resp.Status > 599:
			return errorFrame(http.StatusBadGateway, fmt.Sprintf("relay: local server answered status %d", resp.Status))
		}
		return resp
	case <-tctx.Done():
		return errorFrame(http.StatusGatewayTimeout, fmt.Sprintf("relay: the local server did not answer within %v", timeout))
	}
}

// verify checks the request's webhook signature against the endpoint's
// current and previous secrets.
func verify(ep *configv1.Endpoint, req Frame) error {
	var secrets []string
	for _, s := range ep.GetSecrets() {
		secrets = append(secrets, s.GetKey())
	}
	v, err := signature.NewVerifier(secrets...)
	if err != nil {
		return err
	}
	return v.Verify(req.Headers, req.Body)
}
