package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/webhookheaders"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// Handlers of the tenant REST API (/v1 and /webhook), behind requireAPIKey.

// endpointView is an endpoint as tenants see it: no secrets, no password.
type endpointView struct {
	ID             string                      `json:"id"`
	URL            string                      `json:"url"`
	Description    string                      `json:"description"`
	EventTypes     []string                    `json:"event_types"`
	Headers        map[string]customHeaderView `json:"headers"`
	BasicAuth      *basicAuthView              `json:"basic_auth"`
	Enabled        bool                        `json:"enabled"`
	DisabledReason string                      `json:"disabled_reason,omitempty"`
	TimeoutSeconds int                         `json:"timeout_seconds"`
	RateLimit      int                         `json:"rate_limit"`
	CreatedAt      time.Time                   `json:"created_at"`
	UpdatedAt      time.Time                   `json:"updated_at"`
}

// customHeaderView is a custom header as tenants see it: its value as a JSON
// string, or {"secret": true, "set": true} for a secret header, whose value
// is never shown.
type customHeaderView struct {
	Value  string
	Secret bool
}

// MarshalJSON encodes the value, or that a secret value is set.
func (h customHeaderView) MarshalJSON() ([]byte, error) {
	if h.Secret {
		return []byte(`{"secret":true,"set":true}`), nil
	}
	return json.Marshal(h.Value)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (h *customHeaderView) UnmarshalJSON(b []byte) error {
	var body headerBody
	if err := body.UnmarshalJSON(b); err != nil {
		return err
	}
	*h = customHeaderView{Secret: body.Secret != nil && *body.Secret}
	if body.Value != nil {
		h.Value = *body.Value
	}
	return nil
}

// headerBody is a custom header in a request: a JSON string, or an object
// {"value"?, "secret"?} ("set", as answers carry it, is ignored). A secret
// header without a value keeps its stored value.
type headerBody struct {
	Value  *string
	Secret *bool
}

// UnmarshalJSON decodes a string or an object.
func (h *headerBody) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("header value: %w", err)
		}
		*h = headerBody{Value: &v}
		return nil
	}
	var o struct {
		Value  *string `json:"value"`
		Secret *bool   `json:"secret"`
		Set    *bool   `json:"set"`
	}
	if err := unmarshalStrict(b, &o); err != nil {
		return fmt.Errorf(`a header is a string or an object {"value", "secret"}: %w`, err)
	}
	*h = headerBody{Value: o.Value, Secret: o.Secret}
	return nil
}

// headerInputs turns request headers into the store's HeaderValues.
func headerInputs(in map[string]headerBody) (map[string]HeaderValue, error) {
	out := make(map[string]HeaderValue, len(in))
	for name, h := range in {
		secret := h.Secret != nil && *h.Secret
		switch {
		case h.Secret != nil && !secret && webhookheaders.Credential(name):
			return nil, invalid("headers."+name+".secret", "header %q carries a credential by its name and is always secret", name)
		case h.Value == nil && !secret:
			return nil, invalid("headers."+name, "needs a value")
		}
		hv := HeaderValue{Secret: secret, Keep: h.Value == nil}
		if h.Value != nil {
			hv.Value = *h.Value
		}
		out[name] = hv
	}
	return out, nil
}

type basicAuthView struct {
	Username    string `json:"username"`
	PasswordSet bool   `json:"password_set"`
}

func newEndpointView(ep *configv1.Endpoint) endpointView {
	v := endpointView{
		ID:             ep.GetId(),
		URL:            ep.GetUrl(),
		Description:    ep.GetDescription(),
		EventTypes:     ep.GetEventTypes(),
		Enabled:        ep.GetEnabled(),
		DisabledReason: ep.GetDisabledReason(),
		TimeoutSeconds: int(ep.GetTimeoutMs() / 1000),
		RateLimit:      int(ep.GetRateLimit()),
		CreatedAt:      ep.GetCreatedAt().AsTime(),
		UpdatedAt:      ep.GetUpdatedAt().AsTime(),
	}
	if v.EventTypes == nil {
		v.EventTypes = []string{}
	}
	v.Headers = make(map[string]customHeaderView, len(ep.GetHeaders()))
	for name, value := range ep.GetHeaders() {
		if slices.Contains(ep.GetSecretHeaders(), name) || webhookheaders.Credential(name) {
			v.Headers[name] = customHeaderView{Secret: true}
			continue
		}
		v.Headers[name] = customHeaderView{Value: value}
	}
	if ba := ep.GetBasicAuth(); ba != nil {
		v.BasicAuth = &basicAuthView{Username: ba.GetUsername(), PasswordSet: ba.GetPassword() != ""}
	}
	return v
}

type basicAuthBody struct {
	Username string  `json:"username"`
	Password *string `json:"password"`
}

type createEndpointBody struct {
	URL            string                `json:"url"`
	Description    string                `json:"description"`
	EventTypes     []string              `json:"event_types"`
	Headers        map[string]headerBody `json:"headers"`
	BasicAuth      *basicAuthBody        `json:"basic_auth"`
	Enabled        *bool                 `json:"enabled"`
	TimeoutSeconds *int                  `json:"timeout_seconds"`
	RateLimit      *int                  `json:"rate_limit"`
	Secret         string                `json:"secret"`
}

// patchEndpointBody changes the fields present; basic_auth null removes the
// credentials.
type patchEndpointBody struct {
	URL            *string                `json:"url"`
	Description    *string                `json:"description"`
	EventTypes     *[]string              `json:"event_types"`
	Headers        *map[string]headerBody `json:"headers"`
	BasicAuth      json.RawMessage        `json:"basic_auth"`
	Enabled        *bool                  `json:"enabled"`
	TimeoutSeconds *int                   `json:"timeout_seconds"`
	RateLimit      *int                   `json:"rate_limit"`
}

type rotateSecretBody struct {
	Key                string `json:"key"`
	GracePeriodSeconds *int   `json:"grace_period_seconds"`
	// ExpirePrevious "now" retires every earlier secret at once.
	ExpirePrevious string `json:"expire_previous"`
}

// secretView is the current signing secret, and the retired secrets that
// still sign until they expire, identified by fingerprint only.
type secretView struct {
	Key      string              `json:"key"`
	Previous []retiredSecretView `json:"previous"`
}

// retiredSecretView is a rotated-out secret still in its grace period.
type retiredSecretView struct {
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// newSecretView lists ep's secrets that sign at now.
func newSecretView(ep *configv1.Endpoint, now time.Time) secretView {
	v := secretView{Key: CurrentSecret(ep), Previous: []retiredSecretView{}}
	for _, sec := range ep.GetSecrets() {
		if sec.GetExpiresAt() == nil || !sec.GetExpiresAt().AsTime().After(now) {
			continue
		}
		v.Previous = append(v.Previous, retiredSecretView{
			Fingerprint: secretFingerprint(sec.GetKey()),
			CreatedAt:   sec.GetCreatedAt().AsTime(),
			ExpiresAt:   sec.GetExpiresAt().AsTime(),
		})
	}
	return v
}

func (s *Service) listEndpoints(w http.ResponseWriter, r *http.Request, tenantID string) {
	after, limit, err := pageParams(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	eps, more, err := s.store.ListEndpoints(r.Context(), tenantID, after, limit)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	views := make([]endpointView, len(eps))
	for i, ep := range eps {
		views[i] = newEndpointView(ep)
	}
	writeJSON(w, http.StatusOK, newListPage(views, more, func(v endpointView) string { return v.ID }))
}

func (s *Service) createEndpoint(w http.ResponseWriter, r *http.Request, tenantID string) {
	var body createEndpointBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	headers, err := headerInputs(body.Headers)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	in := EndpointInput{
		URL:            body.URL,
		Description:    body.Description,
		EventTypes:     body.EventTypes,
		Headers:        headers,
		Enabled:        body.Enabled,
		TimeoutSeconds: body.TimeoutSeconds,
		RateLimit:      body.RateLimit,
		Secret:         body.Secret,
	}
	if body.BasicAuth != nil {
		in.BasicAuth = &BasicAuth{Username: body.BasicAuth.Username}
		if body.BasicAuth.Password != nil {
			in.BasicAuth.Password = *body.BasicAuth.Password
		}
	}
	ep, err := s.store.CreateEndpoint(r.Context(), tenantID, in)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	w.Header().Set("Location", "/v1/endpoints/"+ep.GetId())
	writeJSON(w, http.StatusCreated, newEndpointView(ep))
}

func (s *Service) getEndpoint(w http.ResponseWriter, r *http.Request, tenantID string) {
	ep, err := s.store.GetEndpoint(r.Context(), tenantID, r.PathValue("id"))
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newEndpointView(ep))
}

func (s *Service) patchEndpoint(w http.ResponseWriter, r *http.Request, tenantID string) {
	var body patchEndpointBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	patch := EndpointPatch{
		URL:            body.URL,
		Description:    body.Description,
		EventTypes:     body.EventTypes,
		Enabled:        body.Enabled,
		TimeoutSeconds: body.TimeoutSeconds,
		RateLimit:      body.RateLimit,
	}
	if body.Headers != nil {
		headers, err := headerInputs(*body.Headers)
		if err != nil {
			writeErr(w, r, s.log, err)
			return
		}
		patch.Headers = &headers
	}
	switch raw := bytes.TrimSpace(body.BasicAuth); {
	case len(raw) == 0:
	case bytes.Equal(raw, []byte("null")):
		patch.RemoveBasicAuth = true
	default:
		var ba basicAuthBody
		if err := unmarshalStrict(raw, &ba); err != nil {
			writeErr(w, r, s.log, badRequest("invalid_json", "basic_auth must be null or an object with username and password: %v", err))
			return
		}
		patch.BasicAuth = &BasicAuthPatch{Username: ba.Username, Password: ba.Password}
	}
	ep, err := s.store.UpdateEndpoint(r.Context(), tenantID, r.PathValue("id"), patch)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newEndpointView(ep))
}

func (s *Service) deleteEndpoint(w http.ResponseWriter, r *http.Request, tenantID string) {
	if err := s.store.DeleteEndpoint(r.Context(), tenantID, r.PathValue("id")); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) getSecret(w http.ResponseWriter, r *http.Request, tenantID string) {
	ep, err := s.store.GetEndpoint(r.Context(), tenantID, r.PathValue("id"))
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newSecretView(ep, s.store.now()))
}

func (s *Service) rotateSecret(w http.ResponseWriter, r *http.Request, tenantID string) {
	var body rotateSecretBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, true); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	grace := 24 * time.Hour
	if body.GracePeriodSeconds != nil {
		maxSeconds := int((maxGracePeriodHours * time.Hour).Seconds())
		if g := *body.GracePeriodSeconds; g < 0 || g > maxSeconds {
			writeErr(w, r, s.log, invalid("grace_period_seconds", "must be between 0 and %d (7 days), got %d", maxSeconds, g))
			return
		}
		grace = time.Duration(*body.GracePeriodSeconds) * time.Second
	}
	switch {
	case body.ExpirePrevious == "":
	case body.ExpirePrevious != "now":
		writeErr(w, r, s.log, invalid("expire_previous", `must be "now" (retire every earlier secret at once) or absent, got %q`, body.ExpirePrevious))
		return
	case body.GracePeriodSeconds != nil:
		writeErr(w, r, s.log, invalid("expire_previous", "cannot be combined with grace_period_seconds"))
		return
	}
	ep, err := s.store.RotateSecret(r.Context(), tenantID, r.PathValue("id"), body.Key, grace, body.ExpirePrevious == "now")
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newSecretView(ep, s.store.now()))
}

// createPortalLink answers POST /webhook, whose body {"embed"?,
// "return_url"?} is optional.
func (s *Service) createPortalLink(w http.ResponseWriter, r *http.Request, tenantID string) {
	var opts LinkOptions
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &opts, true); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	link, err := s.store.CreatePortalLink(r.Context(), tenantID, opts)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, link)
}
