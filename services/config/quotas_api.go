package config

import "net/http"

// patchTenantBody is the body of PATCH /admin/v1/tenants/{id}.
type patchTenantBody struct {
	// Quotas, when present, replaces the tenant's overrides; {} clears them.
	Quotas *TenantQuotas `json:"quotas"`
}

// patchTenant sets a tenant's quota overrides (operator API).
func (s *Service) patchTenant(w http.ResponseWriter, r *http.Request) {
	var body patchTenantBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	id := r.PathValue("id")
	if body.Quotas == nil {
		t, err := s.store.GetTenant(r.Context(), id)
		if err != nil {
			writeErr(w, r, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, t)
		return
	}
	t, err := s.store.SetTenantQuotas(r.Context(), id, body.Quotas)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}
