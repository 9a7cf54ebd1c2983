package relay

import (
	"net/http"
	"strings"
)

// Frame types.
const (
	// FrameHello is the server's first frame on a listener's connection; it
	// names the endpoint.
	FrameHello = "hello"
	// FrameRequest is a delivery for the listener to forward to its local
	// server.
	FrameRequest = "request"
	// FrameResponse is the listener's answer to one FrameRequest, with the
	// same ID.
	FrameResponse = "response"
)

// Frame is one JSON text message on a listener's WebSocket, and the body of
// the NATS request between config replicas. Body is base64 in JSON.
type Frame struct {
	Type string `json:"type"`
	// ID pairs a response with its request; unique per connection.
	ID string `json:"id,omitempty"`
	// EndpointID is the relay endpoint (hello, and requests between replicas).
	EndpointID string `json:"endpoint_id,omitempty"`
	// Method of a request.
	Method string `json:"method,omitempty"`
	// Status of a response.
	Status int `json:"status,omitempty"`
	// Headers of the request or response.
	Headers http.Header `json:"headers,omitempty"`
	// Body of the request or response.
	Body []byte `json:"body,omitempty"`
	// TimeoutMS is how long the listener has to answer a request.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Error, in a response, says why the local server gave no answer (it
	// could not be reached, or timed out); Status is then 0.
	Error string `json:"error,omitempty"`
	// TimedOut, in a response, says the local server did not answer within
	// TimeoutMS (Error says how it failed).
	TimedOut bool `json:"timed_out,omitempty"`
}

// MaxBodyBytes bounds the body of a relayed request and of a local answer
// (the rest of an answer is cut off), so a frame stays well inside NATS's
// default 1 MiB message size after base64.
const MaxBodyBytes = 512 << 10

// hopHeaders are not relayed either way: they belong to one connection, or
// are recomputed by the next hop's HTTP stack.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host", "Accept-Encoding",
}

// CleanHeaders returns a copy of h without hop-by-hop headers.
func CleanHeaders(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for _, name := range hopHeaders {
		out.Del(name)
	}
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			out.Del(strings.TrimSpace(name))
		}
	}
	return out
}
