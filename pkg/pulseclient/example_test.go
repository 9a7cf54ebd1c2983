package pulseclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
)

// A job processor reports that a job completed. The idempotency key names the
// status change, so a processor that crashes and reports it again after a
// restart stores one event, not two.
func Example() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	client := pulseclient.New(nc)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := client.Publish(ctx, pulseclient.PublishInput{
		TenantID:       "ten_01JB3K8N2Z6Q4W9X0R5T7V1C3M",
		EventType:      "job.completed",
		Data:           map[string]any{"job_id": "job_123", "status": "completed", "pages": 12},
		IdempotencyKey: "job_123/completed",
	})
	var perr *pulseclient.Error
	switch {
	case errors.As(err, &perr) && perr.Code == pulseclient.CodeUnknownEventType:
		log.Fatalf("event type not in the catalog: %v", perr)
	case err != nil:
		log.Fatal(err) // ingest stayed unavailable for 30 s
	}
	fmt.Println(res.MessageID, res.Duplicate)
}
