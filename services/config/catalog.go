package config

import "encoding/json"

// defaultCatalog is the event-type catalog stored on the first start. It is
// data from then on: operators change it through the operator API.
func defaultCatalog() []EventType {
	return []EventType{
		{
			Name:        "job.created",
			Description: "Sent when Pulse accepts a document-processing job and queues it. The job has not started yet.",
			ExamplePayload: json.RawMessage(`{"job_id":"job_01J8ZKX4M2Q7R5T9V3W6Y8B1C4","status":"queued",` +
				`"document_name":"invoice-2024-0423.pdf","created_at":"2025-01-15T10:00:00Z"}`),
			JSONSchema: jobSchema("queued", `"document_name":{"type":"string"},"created_at":{"type":"string","format":"date-time"}`, `"created_at"`),
		},
		{
			Name:        "job.processing",
			Description: "Sent when a job leaves the queue and Pulse starts processing the document.",
			ExamplePayload: json.RawMessage(`{"job_id":"job_01J8ZKX4M2Q7R5T9V3W6Y8B1C4","status":"processing",` +
				`"started_at":"2025-01-15T10:00:02Z"}`),
			JSONSchema: jobSchema("processing", `"started_at":{"type":"string","format":"date-time"}`, `"started_at"`),
		},
		{
			Name:        "job.completed",
			Description: "Sent when a job finishes successfully. Its results can be fetched from result_url.",
			ExamplePayload: json.RawMessage(`{"job_id":"job_01J8ZKX4M2Q7R5T9V3W6Y8B1C4","status":"completed",` +
				`"completed_at":"2025-01-15T10:00:41Z","page_count":12,` +
				`"result_url":"https://api.pulse.example/v1/jobs/job_01J8ZKX4M2Q7R5T9V3W6Y8B1C4/result"}`),
			JSONSchema: jobSchema("completed",
				`"completed_at":{"type":"string","format":"date-time"},"page_count":{"type":"integer","minimum":0},"result_url":{"type":"string","format":"uri"}`,
				`"completed_at","result_url"`),
		},
		{
			Name:        "job.failed",
			Description: "Sent when a job stops with an error. Pulse does not retry it; submit the document again after fixing the cause.",
			ExamplePayload: json.RawMessage(`{"job_id":"job_01J8ZKX4M2Q7R5T9V3W6Y8B1C4","status":"failed",` +
				`"failed_at":"2025-01-15T10:00:19Z","error":{"code":"unreadable_document","message":"The document is encrypted and cannot be read."}}`),
			JSONSchema: jobSchema("failed",
				`"failed_at":{"type":"string","format":"date-time"},"error":{"type":"object","required":["code","message"],`+
					`"properties":{"code":{"type":"string"},"message":{"type":"string"}}}`,
				`"failed_at","error"`),
		},
		{
			Name:        "job.cancelled",
			Description: "Sent when a job is cancelled, by its owner or by Pulse, before it completed.",
			ExamplePayload: json.RawMessage(`{"job_id":"job_01J8ZKX4M2Q7R5T9V3W6Y8B1C4","status":"cancelled",` +
				`"cancelled_at":"2025-01-15T10:00:07Z","reason":"cancelled by user"}`),
			JSONSchema: jobSchema("cancelled", `"cancelled_at":{"type":"string","format":"date-time"},"reason":{"type":"string"}`, `"cancelled_at"`),
		},
		{
			Name:        "pulsehooks.test",
			Description: "A test event sent on request from the portal or the API, to check that an endpoint receives webhooks and verifies their signatures. It describes no real job.",
			ExamplePayload: json.RawMessage(`{"job_id":"job_test","status":"test",` +
				`"message":"This is a test event from pulsehooks. If you can read this, your endpoint works."}`),
			JSONSchema: jobSchema("test", `"message":{"type":"string"}`, `"message"`),
		},
	}
}

// jobSchema returns the JSON Schema of a job event's data: job_id, status
// (fixed to status), then the given extra properties and required names.
func jobSchema(status, properties, required string) json.RawMessage {
	return json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",` +
		`"required":["job_id","status",` + required + `],` +
		`"properties":{"job_id":{"type":"string","pattern":"^job_"},"status":{"const":"` + status + `"},` + properties + `}}`)
}
