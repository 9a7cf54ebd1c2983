package config

import (
	"encoding/json"
	"net/http"
)

// Handlers of the operator API (/admin/v1), behind requireAdmin.

type createTenantBody struct {
	ID     string        `json:"id"`
	Name   string        `json:"name"`
	Quotas *TenantQuotas `json:"quotas"`
}

func (s *Service) createTenant(w http.ResponseWriter, r *http.Request) {
	var body createTenantBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	t, err := s.store.CreateTenantWithQuotas(r.Context(), body.ID, body.Name, body.Quotas)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (s *Service) listTenants(w http.ResponseWriter, r *http.Request) {
	after, limit, err := pageParams(r)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	ts, more, err := s.store.ListTenants(r.Context(), after, limit)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newListPage(ts, more, func(t Tenant) string { return t.ID }))
}

func (s *Service) getTenant(w http.ResponseWriter, r *http.Request) {
	t, err := s.store.GetTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

type createAPIKeyBody struct {
	Name string `json:"name"`
}

func (s *Service) createAPIKey(w http.ResponseWriter, r *http.Request) {
	var body createAPIKeyBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, true); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	k, err := s.store.CreateAPIKey(r.Context(), r.PathValue("id"), body.Name)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, k)
}

func (s *Service) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.store.ListAPIKeys(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newListPage(keys, false, func(k APIKey) string { return k.ID }))
}

func (s *Service) revokeAPIKey(w http.ResponseWriter, r *http.Request) {
	if err := s.store.RevokeAPIKey(r.Context(), r.PathValue("id"), r.PathValue("key_id")); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listEventTypes serves the catalog to operators and tenants alike.
func (s *Service) listEventTypes(w http.ResponseWriter, r *http.Request) {
	ets, err := s.store.ListEventTypes(r.Context())
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newListPage(ets, false, func(et EventType) string { return et.Name }))
}

type putEventTypeBody struct {
	Description    string          `json:"description"`
	ExamplePayload json.RawMessage `json:"example_payload"`
	JSONSchema     json.RawMessage `json:"json_schema"`
}

func (s *Service) putEventType(w http.ResponseWriter, r *http.Request) {
	var body putEventTypeBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	et, created, err := s.store.PutEventType(r.Context(), EventType{
		Name:           r.PathValue("name"),
		Description:    body.Description,
		ExamplePayload: body.ExamplePayload,
		JSONSchema:     body.JSONSchema,
	})
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, et)
}

func (s *Service) deleteEventType(w http.ResponseWriter, r *http.Request) {
	if err := s.store.DeleteEventType(r.Context(), r.PathValue("name")); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
