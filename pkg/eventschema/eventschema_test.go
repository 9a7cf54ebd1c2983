package eventschema

import (
	"errors"
	"testing"
)

const jobCompleted = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",` +
	`"required":["job_id","status","completed_at","result_url"],` +
	`"properties":{"job_id":{"type":"string","pattern":"^job_"},"status":{"const":"completed"},` +
	`"completed_at":{"type":"string","format":"date-time"},"page_count":{"type":"integer","minimum":0},"result_url":{"type":"string","format":"uri"}}}`

const typical = `{"job_id":"job_01J8ZKX4M2Q7R5T9V3W6Y8B1C4","status":"completed","completed_at":"2025-01-15T10:00:41Z",` +
	`"page_count":12,"result_url":"https://api.pulse.example/v1/jobs/job_01J8ZKX4M2Q7R5T9V3W6Y8B1C4/result"}`

func TestValidate(t *testing.T) {
	s, err := Compile([]byte(jobCompleted))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     string
		wantPath string
		wantRule string // "" means valid
	}{
		{"valid", typical, "", ""},
		{"missing result_url", `{"job_id":"job_1","status":"completed","completed_at":"2025-01-15T10:00:41Z"}`, "", "required"},
		{"wrong status", `{"job_id":"job_1","status":"done","completed_at":"2025-01-15T10:00:41Z","result_url":"https://x/r"}`, "/status", "const"},
		{"bad date-time", `{"job_id":"job_1","status":"completed","completed_at":"yesterday","result_url":"https://x/r"}`, "/completed_at", "format"},
		{"negative pages", `{"job_id":"job_1","status":"completed","completed_at":"2025-01-15T10:00:41Z","result_url":"https://x/r","page_count":-1}`, "/page_count", "minimum"},
		{"bad job id", `{"job_id":"j1","status":"completed","completed_at":"2025-01-15T10:00:41Z","result_url":"https://x/r"}`, "/job_id", "pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate([]byte(tt.data))
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate = %v, want an *Error", err)
			}
			if e.Path != tt.wantPath || e.Rule != tt.wantRule || e.Message == "" {
				t.Errorf("Validate = %+v, want path %q rule %q and a message", e, tt.wantPath, tt.wantRule)
			}
		})
	}
}

func TestCompileRefusesInvalidSchemas(t *testing.T) {
	for _, schema := range []string{`{"type":"objekt"}`, `{"required":"job_id"}`, `{"minimum":"x"}`, `not json`} {
		if _, err := Compile([]byte(schema)); err == nil {
			t.Errorf("Compile(%s) = nil error, want one", schema)
		}
	}
}

// BenchmarkValidateJobCompleted is the cost ingest adds per event: a typical
// job.completed data checked against its compiled schema.
func BenchmarkValidateJobCompleted(b *testing.B) {
	s, err := Compile([]byte(jobCompleted))
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(typical)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(data); err != nil {
			b.Fatal(err)
		}
	}
}
