package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/webhookheaders"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// Purposes bound into the associated data of sealed values, with the
// endpoint id, so a sealed value cannot be moved to another endpoint or field.
const (
	purposeSecret    = "secret"
	purposeBasicAuth = "basic-auth-password"
)

// headerPurpose is the purpose of a secret custom header's sealed value.
func headerPurpose(name string) string { return "header:" + strings.ToLower(name) }

func sealAD(endpointID, purpose string) []byte {
	return []byte(endpointID + "/" + purpose)
}

// seal encrypts a secret value of an endpoint.
func (s *Store) seal(endpointID, purpose, plaintext string) ([]byte, error) {
	b, err := s.box.Seal([]byte(plaintext), sealAD(endpointID, purpose))
	if err != nil {
		return nil, fmt.Errorf("seal %s of endpoint %s: %w", purpose, endpointID, err)
	}
	return b, nil
}

// open decrypts a secret value of an endpoint.
func (s *Store) open(endpointID, purpose string, sealed []byte) (string, error) {
	b, err := s.box.Open(sealed, sealAD(endpointID, purpose))
	if err != nil {
		return "", fmt.Errorf("open %s of endpoint %s (is PULSEHOOKS_MASTER_KEY the key it was sealed with?): %w", purpose, endpointID, err)
	}
	return string(b), nil
}

// tenantProto decodes a ph_tenants value.
func tenantProto(value []byte, rev uint64) (*configv1.Tenant, error) {
	var rec tenantRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, fmt.Errorf("decode tenant record: %w", err)
	}
	return &configv1.Tenant{Id: rec.ID, Name: rec.Name, CreatedAt: timestamppb.New(rec.CreatedAt), Revision: rev, Quotas: rec.Quotas.proto()}, nil
}

// eventTypeProto decodes a ph_event_types value.
func eventTypeProto(value []byte, rev uint64) (*configv1.EventType, error) {
	var rec eventTypeRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, fmt.Errorf("decode event type record: %w", err)
	}
	return &configv1.EventType{
		Name:           rec.Name,
		Description:    rec.Description,
		ExamplePayload: string(rec.ExamplePayload),
		JsonSchema:     string(rec.JSONSchema),
		CreatedAt:      timestamppb.New(rec.CreatedAt),
		Revision:       rev,
	}, nil
}

// endpointProto turns a stored record into the internal Endpoint, with its
// secrets and password in clear text.
func (s *Store) endpointProto(rec *endpointRecord, rev uint64) (*configv1.Endpoint, error) {
	ep := &configv1.Endpoint{
		Id:             rec.ID,
		TenantId:       rec.TenantID,
		Url:            rec.URL,
		Description:    rec.Description,
		EventTypes:     rec.EventTypes,
		Enabled:        rec.Enabled,
		TimeoutMs:      rec.TimeoutMS,
		RateLimit:      rec.RateLimit,
		CreatedAt:      timestamppb.New(rec.CreatedAt),
		UpdatedAt:      timestamppb.New(rec.UpdatedAt),
		Revision:       rev,
		DisabledReason: rec.DisabledReason,
	}
	if err := s.headersProto(rec, ep); err != nil {
		return nil, err
	}
	if rec.BasicAuth != nil {
		pw, err := s.open(rec.ID, purposeBasicAuth, rec.BasicAuth.SealedPassword)
		if err != nil {
			return nil, err
		}
		ep.BasicAuth = &configv1.BasicAuth{Username: rec.BasicAuth.Username, Password: pw}
	}
	for _, sr := range rec.Secrets {
		key, err := s.open(rec.ID, purposeSecret, sr.Sealed)
		if err != nil {
			return nil, err
		}
		sec := &configv1.Secret{Key: key, CreatedAt: timestamppb.New(sr.CreatedAt)}
		if sr.ExpiresAt != nil {
			sec.ExpiresAt = timestamppb.New(*sr.ExpiresAt)
		}
		ep.Secrets = append(ep.Secrets, sec)
	}
	return ep, nil
}

// headersProto sets ep's headers, secret ones opened, and names the secret
// ones (sealed, or stored in clear under a credential name).
func (s *Store) headersProto(rec *endpointRecord, ep *configv1.Endpoint) error {
	if len(rec.Headers)+len(rec.SecretHeaders) == 0 {
		return nil
	}
	ep.Headers = make(map[string]string, len(rec.Headers)+len(rec.SecretHeaders))
	for name, value := range rec.Headers {
		ep.Headers[name] = value
		if webhookheaders.Credential(name) {
			ep.SecretHeaders = append(ep.SecretHeaders, name)
		}
	}
	for name, sealed := range rec.SecretHeaders {
		value, err := s.open(rec.ID, headerPurpose(name), sealed)
		if err != nil {
			return err
		}
		ep.Headers[name] = value
		ep.SecretHeaders = append(ep.SecretHeaders, name)
	}
	slices.Sort(ep.SecretHeaders)
	return nil
}

// decodeEndpoint decodes a ph_endpoints value.
func (s *Store) decodeEndpoint(value []byte, rev uint64) (*configv1.Endpoint, error) {
	var rec endpointRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, fmt.Errorf("decode endpoint record: %w", err)
	}
	return s.endpointProto(&rec, rev)
}

// endpointKey is the ph_endpoints key of an endpoint.
func endpointKey(tenantID, endpointID string) string {
	return tenantID + "." + endpointID
}

// splitEndpointKey splits "<tenant>.<endpoint id>".
func splitEndpointKey(key string) (tenantID, endpointID string, ok bool) {
	tenantID, endpointID, ok = strings.Cut(key, ".")
	return tenantID, endpointID, ok && tenantID != "" && endpointID != ""
}
