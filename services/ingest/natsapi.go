package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Micro service identity.
const (
	// ServiceName is the NATS micro service name of ingest.
	ServiceName    = "pulsehooks-ingest"
	serviceVersion = "1.0.0"
)

// inbound is a request as the handler goroutine sees it: copied out of the
// micro.Request, which micro itself still reads after the callback returns.
type inbound struct {
	data   []byte
	header nats.Header
	reply  string
}

// startMicro registers the publish endpoint as a micro service in the ingest
// queue group. Each request is handled on its own goroutine (up to
// MaxInFlight at once), with base as its parent context: shutdown does not
// cancel requests in flight. Because micro calls handlers one at a time per
// subscription, handling in the callback would serialise publishes; the
// price is that micro's STATS count requests but not their errors or time.
func (s *Service) startMicro(base context.Context) (micro.Service, error) {
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        ServiceName,
		Version:     serviceVersion,
		Description: "pulsehooks ingest: stores job events published by Pulse's job processors",
		QueueGroup:  streams.IngestQueue,
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Error("nats service error", "subject", e.Subject, "err", e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("add micro service %s: %w", ServiceName, err)
	}
	handler := micro.ContextHandler(base, func(ctx context.Context, req micro.Request) {
		in := inbound{data: req.Data(), header: nats.Header(req.Headers()), reply: req.Reply()}
		if !s.inflight.acquire() {
			s.replyError(ctx, in, unavailable("ingest is shutting down, retry", nil))
			return
		}
		go func() {
			defer s.inflight.release()
			s.handleNATS(ctx, in)
		}()
	})
	if err := svc.AddEndpoint("publish", handler, micro.WithEndpointSubject(streams.IngestSubject)); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("add endpoint %s: %w", streams.IngestSubject, err)
	}
	return svc, nil
}

// handleNATS serves one PublishRequest.
func (s *Service) handleNATS(ctx context.Context, in inbound) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ctx = natsx.Extract(ctx, in.header)

	var pr eventv1.PublishRequest
	if err := proto.Unmarshal(in.data, &pr); err != nil {
		err = badRequest(pulseclient.CodeMalformedRequest, "request is not a protobuf PublishRequest: %v", err)
		s.published(ctx, input{}, result{}, err)
		s.replyError(ctx, in, err)
		return
	}
	req := input{
		tenantID:       pr.GetTenantId(),
		eventType:      pr.GetEventType(),
		data:           pr.GetData(),
		idempotencyKey: pr.GetIdempotencyKey(),
	}
	if ts := pr.GetTimestamp(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			err = badRequest(pulseclient.CodeInvalidTimestamp, "timestamp is invalid: %v", err)
			s.published(ctx, req, result{}, err)
			s.replyError(ctx, in, err)
			return
		}
		req.timestamp, req.hasTimestamp = ts.AsTime(), true
	}
	res, err := s.accept(ctx, req)
	if err != nil {
		s.replyError(ctx, in, err)
		return
	}
	body, err := proto.Marshal(&eventv1.PublishResponse{MessageId: res.messageID, Duplicate: res.duplicate})
	if err != nil {
		s.replyError(ctx, in, fmt.Errorf("encode reply: %w", err))
		return
	}
	if err := s.reply(in, nil, body); err != nil {
		s.log.WarnContext(ctx, "reply to publisher failed", "message_id", res.messageID, "err", err)
	}
}

// replyError answers as a micro service error does: the status in the
// Nats-Service-Error-Code header, the message in Nats-Service-Error, and an
// eventv1.Error body.
func (s *Service) replyError(ctx context.Context, in inbound, err error) {
	p := s.logProblem(ctx, "nats", err)
	body, merr := proto.Marshal(&eventv1.Error{Code: p.code, Message: p.message})
	if merr != nil {
		body = nil
	}
	header := nats.Header{}
	header.Set(micro.ErrorCodeHeader, strconv.Itoa(p.status))
	header.Set(micro.ErrorHeader, p.message)
	if rerr := s.reply(in, header, body); rerr != nil {
		s.log.WarnContext(ctx, "error reply to publisher failed", "err", rerr)
	}
}

// reply publishes a reply to the request's reply subject.
func (s *Service) reply(in inbound, header nats.Header, body []byte) error {
	if in.reply == "" {
		return errors.New("request has no reply subject")
	}
	if err := s.nc.PublishMsg(&nats.Msg{Subject: in.reply, Header: header, Data: body}); err != nil {
		return fmt.Errorf("publish reply: %w", err)
	}
	return nil
}
