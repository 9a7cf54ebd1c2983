// Package streams names the JetStream streams and subjects pulsehooks uses and
// creates or updates them idempotently at start-up.
package streams

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	Events      = "EVENTS"
	Deliveries  = "DELIVERIES"
	Attempts    = "ATTEMPTS"
	Operational = "OPERATIONAL"
	States      = "STATES"
)

// Subjects and subject prefixes.
const (
	// IngestSubject is the NATS request/reply subject job processors publish to.
	IngestSubject = "pulsehooks.ingest.v1.publish"
	// IngestQueue is the queue group of the ingest responders.
	IngestQueue = "pulsehooks-ingest"
	// EventsPrefix prefixes EVENTS subjects: events.<tenant>.<event type>.
	EventsPrefix = "events"
	// DeliveriesPrefix prefixes DELIVERIES subjects: deliveries.<partition>.<endpoint>.
	DeliveriesPrefix = "deliveries"
	// AttemptsPrefix prefixes ATTEMPTS subjects: attempts.<tenant>.<endpoint>.
	AttemptsPrefix = "attempts"
	// StatesPrefix prefixes STATES subjects: states.<tenant>.<source>.
	StatesPrefix = "states"
	// OperationalPrefix prefixes operational events: pulsehooks.operational.<type>.
	OperationalPrefix = "pulsehooks.operational"
	// FanoutConsumer is the durable consumer of EVENTS shared by fanout replicas.
	FanoutConsumer = "fanout"
	// DeliveryGroup is the priority group of the partition consumers.
	DeliveryGroup = "workers"
	// partitionsKey is the DELIVERIES stream metadata key that holds P.
	partitionsKey = "pulsehooks.partitions"
)

// Operational event types (eventv1.OperationalEvent.type), each published on
// OperationalSubject(type).
const (
	OpEndpointDisabled = "endpoint.disabled"
	OpAttemptFailing   = "message.attempt.failing"
	OpAttemptExhausted = "message.attempt.exhausted"
	OpAttemptRecovered = "message.attempt.recovered"
)

// OperationalSubject is the subject of operational events of a type, such as
// pulsehooks.operational.endpoint.disabled.
func OperationalSubject(eventType string) string {
	return OperationalPrefix + "." + eventType
}

// DefaultPartitions is the default number of delivery partitions.
const DefaultPartitions = 64

// DefaultOperationalRetention is how long the OPERATIONAL stream keeps
// operational events by default.
const DefaultOperationalRetention = 7 * 24 * time.Hour

// Options are the deployment settings of the streams.
type Options struct {
	// Replicas is the number of stream replicas (1 in development, 3 in production).
	Replicas int
	// Retention is how long events and attempts are kept.
	Retention time.Duration
	// Partitions is the number of delivery partitions, fixed per deployment.
	Partitions int
	// DuplicateWindow is the window in which a repeated Nats-Msg-Id is stored once.
	DuplicateWindow time.Duration
	// OperationalRetention is how long operational events are kept
	// (default DefaultOperationalRetention).
	OperationalRetention time.Duration
}

func (o Options) withDefaults() Options {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	if o.OperationalRetention <= 0 {
		o.OperationalRetention = DefaultOperationalRetention
	}
	return o
}

// EventSubject is the EVENTS subject of an event.
func EventSubject(tenantID, eventType string) string {
	return EventsPrefix + "." + tenantID + "." + eventType
}

// Partition maps an endpoint to its partition (FNV-1a of its id, mod p).
func Partition(endpointID string, p int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(endpointID))
	return int(h.Sum32() % uint32(p))
}

// DeliverySubject is the DELIVERIES subject of an endpoint.
func DeliverySubject(endpointID string, partitions int) string {
	return DeliveriesPrefix + "." + strconv.Itoa(Partition(endpointID, partitions)) + "." + endpointID
}

// PartitionConsumer is the durable consumer name of partition i.
func PartitionConsumer(i int) string {
	return fmt.Sprintf("deliveries-p%d", i)
}

// PartitionFilter is the filter subject of partition i.
func PartitionFilter(i int) string {
	return DeliveriesPrefix + "." + strconv.Itoa(i) + ".>"
}

// AttemptSubject is the ATTEMPTS subject of an endpoint's attempts.
func AttemptSubject(tenantID, endpointID string) string {
	return AttemptsPrefix + "." + tenantID + "." + endpointID
}

// State record sources: the service that made the decision (the last token of
// StateSubject).
const (
	StateSourceFanout   = "fanout"
	StateSourceDelivery = "delivery"
	StateSourceConfig   = "config"
)

// StateSubject is the STATES subject of a tenant's state records (decisions
// about deliveries made without an attempt) made by source.
func StateSubject(tenantID, source string) string {
	return StatesPrefix + "." + tenantID + "." + source
}

// DeliveryMsgID is the Nats-Msg-Id of a delivery: one per message and endpoint.
func DeliveryMsgID(messageID, endpointID string) string {
	return messageID + "." + endpointID
}

// ResendMsgID is the Nats-Msg-Id of a resend (by hand or by a recover
// request) of a message to an endpoint: <msg>.<endpoint>.<resend id>.
func ResendMsgID(messageID, endpointID, resendID string) string {
	return DeliveryMsgID(messageID, endpointID) + "." + resendID
}

// ScheduledDeliveryMsgID is the Nats-Msg-Id of a delivery returned to
// DELIVERIES from the retry schedule: <msg>.<endpoint>.<attempt>.<hops>, or
// <msg>.<endpoint>.<resend id>.<attempt>.<hops> for a resend's. attempt is the
// attempts already made and scheduleCount how often the delivery has entered
// the schedule, which differs on every return, so only a repeat of the same
// return is stored once. The resend id keeps a resend's returns apart from
// the original delivery's (and another resend's), which count their attempts
// and hops from the same start.
func ScheduledDeliveryMsgID(messageID, endpointID, resendID string, attempt, scheduleCount uint32) string {
	id := DeliveryMsgID(messageID, endpointID)
	if resendID != "" {
		id = ResendMsgID(messageID, endpointID, resendID)
	}
	return id + "." + strconv.FormatUint(uint64(attempt), 10) + "." + strconv.FormatUint(uint64(scheduleCount), 10)
}

// OperationalMsgID is the Nats-Msg-Id of an operational event:
// <type>.<key>, where key names what the event is about once (the attempt
// id for attempt events, <endpoint>.<revision> for endpoint.disabled), so a
// retried publish is stored once.
func OperationalMsgID(eventType, key string) string {
	return eventType + "." + key
}

// EnsureEvents creates or updates the EVENTS stream.
func EnsureEvents(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	o = o.withDefaults()
	s, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        Events,
		Description: "pulsehooks events (Standard Webhooks envelopes), kept for the retention window",
		Subjects:    []string{EventsPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		AllowDirect: true,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Events, err)
	}
	return s, nil
}

// EnsureDeliveries creates or updates the DELIVERIES stream and one durable
// consumer per partition, with ackWait (0: DefaultDeliveryAckWait) and
// DeliveryPinnedTTL; existing consumers are updated to them. It refuses to
// change the partition count of an existing stream, since deliveries
// already stored would be stranded.
func EnsureDeliveries(ctx context.Context, js jetstream.JetStream, o Options, ackWait time.Duration) (jetstream.Stream, error) {
	o = o.withDefaults()
	if ackWait <= 0 {
		ackWait = DefaultDeliveryAckWait
	}
	if existing, err := js.Stream(ctx, Deliveries); err == nil {
		if p, ok := existing.CachedInfo().Config.Metadata[partitionsKey]; ok && p != strconv.Itoa(o.Partitions) {
			return nil, fmt.Errorf("stream %s has %s partitions, configuration says %d: %w", Deliveries, p, o.Partitions, ErrPartitionsChanged)
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("look up stream %s: %w", Deliveries, err)
	}
	s, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        Deliveries,
		Description: "pending deliveries, one subject per endpoint",
		Subjects:    []string{DeliveriesPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		Metadata:    map[string]string{partitionsKey: strconv.Itoa(o.Partitions)},
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Deliveries, err)
	}
	for i := 0; i < o.Partitions; i++ {
		_, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:        PartitionConsumer(i),
			FilterSubject:  PartitionFilter(i),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        ackWait,
			MaxDeliver:     -1,
			MaxAckPending:  10000,
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PriorityGroups: []string{DeliveryGroup},
			PinnedTTL:      DeliveryPinnedTTL,
			Replicas:       o.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("ensure consumer %s: %w", PartitionConsumer(i), err)
		}
	}
	return s, nil
}

// PartitionsOf returns the partition count recorded on the DELIVERIES stream.
func PartitionsOf(ctx context.Context, js jetstream.JetStream) (int, error) {
	s, err := js.Stream(ctx, Deliveries)
	if err != nil {
		return 0, fmt.Errorf("look up stream %s: %w", Deliveries, err)
	}
	p, err := strconv.Atoi(s.CachedInfo().Config.Metadata[partitionsKey])
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("stream %s has no valid %s metadata", Deliveries, partitionsKey)
	}
	return p, nil
}

// EnsureAttempts creates or updates the ATTEMPTS stream.
func EnsureAttempts(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	o = o.withDefaults()
	s, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        Attempts,
		Description: "every delivery attempt, kept for the retention window",
		Subjects:    []string{AttemptsPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Attempts, err)
	}
	return s, nil
}

// EnsureStates creates or updates the STATES stream: the decisions about
// deliveries made without an attempt (stored by fanout, put off, dropped,
// queued by a resend), kept like the attempts for the retention window.
func EnsureStates(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	o = o.withDefaults()
	s, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        States,
		Description: "delivery states decided without an attempt (pending, put off, dropped), kept for the retention window",
		Subjects:    []string{StatesPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", States, err)
	}
	return s, nil
}

// ErrOperationalCaptured is wrapped by EnsureOperational's error when another
// stream (made by an operator before OPERATIONAL existed) already captures
// the operational subjects. Publishing still works then: that stream stores
// and acknowledges the events.
var ErrOperationalCaptured = errors.New("operational subjects are captured by another stream")

// EnsureOperational creates or updates the OPERATIONAL stream, which keeps
// the operational events (OperationalPrefix.>) for OperationalRetention.
// Core NATS subscribers of the subjects still receive every event.
func EnsureOperational(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	o = o.withDefaults()
	s, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        Operational,
		Description: "pulsehooks operational events (endpoint disabled, attempts failing, exhausted, recovered)",
		Subjects:    []string{OperationalPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.OperationalRetention,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeSubjectOverlap {
		return nil, fmt.Errorf("ensure stream %s: %w: %w", Operational, ErrOperationalCaptured, err)
	}
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Operational, err)
	}
	return s, nil
}

// jsErrCodeSubjectOverlap is the JetStream API error "subjects overlap with
// an existing stream".
const jsErrCodeSubjectOverlap jetstream.ErrorCode = 10065

// EnsureAll creates or updates every stream.
func EnsureAll(ctx context.Context, js jetstream.JetStream, o Options, deliveryAckWait time.Duration) error {
	if _, err := EnsureEvents(ctx, js, o); err != nil {
		return err
	}
	if _, err := EnsureDeliveries(ctx, js, o, deliveryAckWait); err != nil {
		return err
	}
	if _, err := EnsureAttempts(ctx, js, o); err != nil {
		return err
	}
	if _, err := EnsureOperational(ctx, js, o); err != nil {
		return err
	}
	if _, err := EnsureStates(ctx, js, o); err != nil {
		return err
	}
	return nil
}

// ensureStream creates the stream, or updates it when its configuration
// differs from cfg. An unchanged stream is left alone: several services
// ensure the same streams at start-up, and a no-op update racing another
// service's consumer creation is needless work for the server (and has
// tripped a data race inside nats-server 2.15 under the race detector).
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Create only: when several services start at once, the losers of
		// the race find the stream made and compare, instead of updating.
		s, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, cfg.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create or look up stream %s: %w", cfg.Name, err)
	}
	if sameStream(s.CachedInfo().Config, cfg) {
		return s, nil
	}
	s, err = js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("update stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// sameStream reports whether the existing configuration has every setting
// want sets (the server adds metadata of its own, which is ignored).
func sameStream(have, want jetstream.StreamConfig) bool {
	if !slices.Equal(have.Subjects, want.Subjects) || have.Description != want.Description ||
		have.Retention != want.Retention || have.MaxAge != want.MaxAge || have.Storage != want.Storage ||
		have.Replicas != want.Replicas || have.Duplicates != want.Duplicates ||
		have.AllowDirect != want.AllowDirect || have.Discard != want.Discard {
		return false
	}
	for k, v := range want.Metadata {
		if have.Metadata[k] != v {
			return false
		}
	}
	return true
}
