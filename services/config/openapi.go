package config

import (
	_ "embed" // openapi.json
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 document of the tenant REST API, written by
// hand; TestOpenAPIMatchesRoutes keeps it in step with apiRoutes.
//
//go:embed openapi.json
var openAPIDoc []byte

// serveOpenAPI answers GET /v1/openapi.json; it needs no credentials.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDoc)
}
