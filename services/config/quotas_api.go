package config

import "net/http"

// patchTenantBody is the body of PATCH /admin/v1/tenants/{id}.
type patchTenantBody struct {
	// Quotas, when present, replaces the tenant's overrides; {} clears them.
	Quotas *TenantQuotas `json:"quotas"`
	// Portal, when present, replaces the tenant's portal settings; {}
	// clears them.
	Portal *PortalSettings `json:"portal"`
}

// patchTenant sets a tenant's quota overrides (operator API).
func (s *Service) patchTenant(w http.ResponseWriter, r *http.Request) {
	var body patchTenantBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	id := r.PathValue("id")
	if body.Portal != nil {
		p, err := body.Portal.normalize(apiSettingNames)
		if err != nil {
			writeErr(w, r, s.log, err)
			return
		}
		body.Portal = &p
	}
	if body.Quotas != nil {
		if err := body.Quotas.check(); err != nil {
			writeErr(w, r, s.log, err)
			return
		}
	}
	if body.Portal != nil {
		if _, err := s.store.SetTenantPortal(r.Context(), id, body.Portal); err != nil {
			writeErr(w, r, s.log, err)
			return
		}
	}
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
