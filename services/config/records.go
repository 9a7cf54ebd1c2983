package config

import (
	"encoding/json"
	"time"
)

// The records below are the JSON values stored in the KV buckets. They are
// readable with `nats kv get`; secrets and passwords are sealed with the
// master key (base64 of the secretbox output in JSON).

// tenantRecord is the value of ph_tenants, key = tenant id.
type tenantRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Quotas are the operator's overrides of the deployment's quotas.
	Quotas *TenantQuotas `json:"quotas,omitempty"`
	// Portal is the operator's portal branding and embedding for the tenant.
	Portal *PortalSettings `json:"portal,omitempty"`
}

// apiKeyRecord is the value of ph_apikeys, key = hex SHA-256 of the key.
type apiKeyRecord struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	Name      string    `json:"name,omitempty"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

// eventTypeRecord is the value of ph_event_types, key = event type name.
type eventTypeRecord struct {
	Name           string          `json:"name"`
	Description    string          `json:"description"`
	ExamplePayload json.RawMessage `json:"example_payload"`
	JSONSchema     json.RawMessage `json:"json_schema,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
}

// endpointRecord is the value of ph_endpoints, key = "<tenant>.<endpoint id>".
type endpointRecord struct {
	ID          string            `json:"id"`
	TenantID    string            `json:"tenant_id"`
	URL         string            `json:"url"`
	Description string            `json:"description,omitempty"`
	EventTypes  []string          `json:"event_types,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	// SecretHeaders are the secret custom headers, name -> sealed value.
	// Headers written before secret headers existed may still hold
	// credential-named ones in clear; they are treated as secret on read
	// and sealed on the next write.
	SecretHeaders  map[string][]byte `json:"secret_headers,omitempty"`
	BasicAuth      *basicAuthRecord  `json:"basic_auth,omitempty"`
	Secrets        []secretRecord    `json:"secrets"`
	Enabled        bool              `json:"enabled"`
	DisabledReason string            `json:"disabled_reason,omitempty"`
	TimeoutMS      uint32            `json:"timeout_ms"`
	RateLimit      uint32            `json:"rate_limit"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

// basicAuthRecord holds the username and the sealed password.
type basicAuthRecord struct {
	Username       string `json:"username"`
	SealedPassword []byte `json:"sealed_password"`
}

// secretRecord is one sealed signing secret; ExpiresAt is set once rotated out.
type secretRecord struct {
	Sealed    []byte     `json:"sealed"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// portalTokenRecord is the value of ph_portal_tokens, key = hex SHA-256 of
// the token.
type portalTokenRecord struct {
	TenantID  string    `json:"tenant_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Embed and ReturnURL are the link's options (LinkOptions).
	Embed     bool   `json:"embed,omitempty"`
	ReturnURL string `json:"return_url,omitempty"`
}

// sessionRecord is the value of ph_sessions, key = hex SHA-256 of the
// session id.
type sessionRecord struct {
	TenantID  string    `json:"tenant_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Embed and ReturnURL come from the link that started the session.
	Embed     bool   `json:"embed,omitempty"`
	ReturnURL string `json:"return_url,omitempty"`
}
