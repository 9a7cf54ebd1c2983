// Package eventschema compiles the JSON Schemas (draft 2020-12) of the
// event-type catalog and checks event data against them, with errors that
// name the failing path and rule. Formats (date-time, uri, …) are asserted.
package eventschema

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaURL is the made-up location a schema is compiled at; it only
// appears in errors about the schema itself.
const schemaURL = "mem:///schema.json"

// Schema is a compiled schema. It is safe for concurrent use.
type Schema struct {
	s       *jsonschema.Schema
	printer *message.Printer // of the library's messages
}

// Error says where data fails its schema and which rule it breaks.
type Error struct {
	// Path is the JSON pointer of the failing value inside data, such as
	// "/status" ("" for data itself).
	Path string
	// Rule is the schema keyword that failed, such as "required" or "const".
	Rule string
	// Message says what is wrong, for a person to read.
	Message string
}

// Error returns "at <path>: <message> (<rule>)".
func (e *Error) Error() string {
	path := e.Path
	if path == "" {
		path = "/"
	}
	return fmt.Sprintf("at %s: %s (%s)", path, e.Message, e.Rule)
}

// Compile compiles a JSON Schema document. Schemas without "$schema" are
// read as draft 2020-12.
func Compile(schema []byte) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("add schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("compile schema: %s", strings.ReplaceAll(err.Error(), schemaURL, "schema"))
	}
	return &Schema{s: s, printer: message.NewPrinter(language.English)}, nil
}

// Validate checks data, a JSON document, against the schema. A failure is an
// *Error naming the first failing value and rule.
func (s *Schema) Validate(data []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return &Error{Rule: "json", Message: "not valid JSON: " + err.Error()}
	}
	err = s.s.Validate(doc)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	rule := ""
	if kw := ve.ErrorKind.KeywordPath(); len(kw) > 0 {
		rule = kw[len(kw)-1]
	}
	return &Error{Path: pointer(ve.InstanceLocation), Rule: rule, Message: ve.ErrorKind.LocalizedString(s.printer)}
}

// pointer returns the JSON pointer of a location.
func pointer(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}
