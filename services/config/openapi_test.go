package config

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pathParam matches a path parameter: {id} in a ServeMux pattern or an
// OpenAPI path.
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// operationKey is "METHOD /path" with every path parameter written {}.
func operationKey(method, path string) string {
	return strings.ToUpper(method) + " " + pathParam.ReplaceAllString(path, "{}")
}

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type openAPIDocument struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

func loadOpenAPI(t *testing.T) openAPIDocument {
	t.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			if slices.Contains(openAPIMethods, method) {
				documented[operationKey(method, path)] = true
			}
		}
	}
	routed := map[string]bool{}
	for _, rt := range (&Service{}).apiRoutes() {
		key := operationKey(rt.method, rt.pattern)
		if routed[key] {
			t.Errorf("route %s is in apiRoutes twice", key)
		}
		routed[key] = true
		if !documented[key] {
			t.Errorf("route %s %s is not in openapi.json", rt.method, rt.pattern)
		}
	}
	for key := range documented {
		if !routed[key] {
			t.Errorf("openapi.json documents %s, which apiRoutes does not route", key)
		}
	}
	if len(routed) < 20 {
		t.Errorf("apiRoutes has %d routes, want every /v1 route and /webhook", len(routed))
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	var root any
	if err := json.Unmarshal(openAPIDoc, &root); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}

	// Every $ref is a local JSON pointer to something that exists.
	refs := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs++
				if _, err := resolvePointer(root, ref); err != nil {
					t.Errorf("$ref %q: %v", ref, err)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(root)
	if refs == 0 {
		t.Error("openapi.json has no $ref; the walk found nothing to check")
	}

	// Every path parameter is declared, and every operation answers.
	paths := root.(map[string]any)["paths"].(map[string]any)
	for path, item := range paths {
		for method, raw := range item.(map[string]any) {
			op, ok := raw.(map[string]any)
			if !ok || !slices.Contains(openAPIMethods, method) {
				continue
			}
			if r, _ := op["responses"].(map[string]any); len(r) == 0 {
				t.Errorf("%s %s has no responses", method, path)
			}
			declared := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := p.(map[string]any)
				if ref, ok := pm["$ref"].(string); ok {
					r, err := resolvePointer(root, ref)
					if err != nil {
						continue // reported above
					}
					pm = r.(map[string]any)
				}
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
			for _, m := range pathParam.FindAllString(path, -1) {
				if name := strings.Trim(m, "{}"); !declared[name] {
					t.Errorf("%s %s does not declare path parameter %s", method, path, name)
				}
			}
		}
	}
}

// resolvePointer follows a local reference such as
// #/components/schemas/Endpoint (RFC 6901) in root.
func resolvePointer(root any, ref string) (any, error) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, errNotLocal
	}
	cur := root
	if ptr == "" {
		return cur, nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, errDangling
		}
		if cur, ok = m[tok]; !ok {
			return nil, errDangling
		}
	}
	return cur, nil
}

type refError string

func (e refError) Error() string { return string(e) }

const (
	errNotLocal refError = "not a local reference"
	errDangling refError = "points at nothing"
)

func TestOpenAPIServedWithoutKey(t *testing.T) {
	h := startService(t)
	status, body, hdr := h.request(http.MethodGet, "/v1/openapi.json", nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json = %d %s, want 200", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !json.Valid(body) || string(body) != string(openAPIDoc) {
		t.Error("GET /v1/openapi.json does not answer the embedded document")
	}
}

// TestOpenAPISchemasMatchViews checks that each documented schema has
// exactly the JSON fields of the type the handlers encode or decode.
func TestOpenAPISchemasMatchViews(t *testing.T) {
	var root struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				AllOf      []struct {
					Ref        string                     `json:"$ref"`
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"allOf"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &root); err != nil {
		t.Fatal(err)
	}
	schemas := root.Components.Schemas
	var props func(name string) []string
	props = func(name string) []string {
		s, ok := schemas[name]
		if !ok {
			t.Fatalf("schema %s is not in openapi.json", name)
		}
		var out []string
		for p := range s.Properties {
			out = append(out, p)
		}
		for _, part := range s.AllOf {
			if part.Ref != "" {
				out = append(out, props(strings.TrimPrefix(part.Ref, "#/components/schemas/"))...)
			}
			for p := range part.Properties {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	for name, v := range map[string]any{
		"Error":             errorBody{},
		"Endpoint":          endpointView{},
		"BasicAuth":         basicAuthView{},
		"BasicAuthInput":    basicAuthBody{},
		"EndpointCreate":    createEndpointBody{},
		"EndpointPatch":     patchEndpointBody{},
		"Secret":            secretView{},
		"RetiredSecret":     retiredSecretView{},
		"RotateSecret":      rotateSecretBody{},
		"TestSend":          testSendBody{},
		"TestSendAccepted":  testSendView{},
		"EventType":         EventType{},
		"PortalLink":        PortalLink{},
		"Message":           messageView{},
		"MessageDetail":     messageDetailView{},
		"Delivery":          deliveryView{},
		"Attempt":           attemptView{},
		"AttemptDetail":     attemptDetailView{},
		"Header":            headerView{},
		"EndpointStats":     statsView{},
		"HourStats":         hourStatsView{},
		"Resend":            resendView{},
		"RecoverRequest":    recoverBody{},
		"Recover":           recoverView{},
		"EndpointPage":      listPage[endpointView]{},
		"MessageRow":        messageRowView{},
		"MessageLogPage":    logPageView[messageRowView]{},
		"DeliveryStatePage": logPageView[deliveryView]{},
	} {
		if got, want := props(name), jsonFields(reflect.TypeOf(v)); !slices.Equal(got, want) {
			t.Errorf("schema %s has properties %v, want the fields of %T: %v", name, got, v, want)
		}
	}
}

// jsonFields are the JSON object keys encoding/json uses for struct type t,
// embedded structs flattened, sorted.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
