package loadgen

import (
	"encoding/json"
	"fmt"
	"strings"
)

// envelopeOverhead is what the envelope ingest wraps data in adds:
// {"type":"<type>","timestamp":"2026-11-26T20:53:39.123Z","data":<data>}.
func envelopeOverhead(eventType string) int {
	return len(`{"type":"`) + len(eventType) + len(`","timestamp":"`) + len("2026-11-26T20:53:39.123Z") + len(`","data":`) + len(`}`)
}

// Data returns the job.completed event data of job jobID (valid against the
// built-in catalog's schema, which ingest enforces), padded so that the body
// an endpoint receives for it is size bytes (when size allows).
func Data(eventType, jobID string, size int) json.RawMessage {
	head := fmt.Sprintf(`{"job_id":%q,"status":"completed","completed_at":"2026-01-15T10:00:41Z",`+
		`"result_url":"https://api.pulse.example/v1/jobs/%s/result","pad":"`, jobID, jobID)
	const tail = `"}`
	pad := max(size-envelopeOverhead(eventType)-len(head)-len(tail), 0)
	return json.RawMessage(head + strings.Repeat("x", pad) + tail)
}

// Body returns a webhook body like the one pulsehooks sends for Data.
func Body(eventType, timestamp, jobID string, size int) []byte {
	return []byte(`{"type":"` + eventType + `","timestamp":"` + timestamp + `","data":` + string(Data(eventType, jobID, size)) + `}`)
}
