package config

import (
	"testing"

	"github.com/pulsehooks/pulsehooks/pkg/eventschema"
)

func TestDefaultCatalogExamplesMatchTheirSchemas(t *testing.T) {
	for _, et := range defaultCatalog() {
		t.Run(et.Name, func(t *testing.T) {
			if len(et.JSONSchema) == 0 {
				t.Fatal("no json_schema: every built-in event type has one")
			}
			sch, err := eventschema.Compile(et.JSONSchema)
			if err != nil {
				t.Fatalf("schema does not compile: %v", err)
			}
			if err := sch.Validate(et.ExamplePayload); err != nil {
				t.Errorf("example_payload %s fails its schema: %v", et.ExamplePayload, err)
			}
		})
	}
}
