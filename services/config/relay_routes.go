package config

import (
	"net/http"
	"slices"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/relayurl"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	"github.com/pulsehooks/pulsehooks/services/config/relay"
)

// relayDescriptionPrefix + name is the description of a relay endpoint made
// by `pulsehooks listen --name <name>`, by which it is found again.
const relayDescriptionPrefix = "pulsehooks listen: "

// registerRelay adds the relay routes (package relay):
//
//	POST /relay/v1/endpoints               x-api-key: create or find the tenant's relay endpoint by name
//	GET  /relay/v1/endpoints/{id}/listen   x-api-key: WebSocket of the listener of a relay endpoint
//	*    /relay/v1/{id}                    the URL of relay endpoint {id}; delivery sends here
func (s *Service) registerRelay(mux *http.ServeMux) {
	for _, rt := range s.relayRoutes() {
		pattern := rt.pattern
		if rt.method != "" {
			pattern = rt.method + " " + pattern
		}
		mux.Handle(pattern, rt.handler)
	}
	mux.HandleFunc("/relay/v1/{id}", s.relay.ServeDelivery)
}

// relayRoutes are the relay's tenant routes (API key), listed apart so the
// tenant isolation test walks them with the others. The delivery route,
// /relay/v1/{id}, is not among them: it takes no tenant credentials, and
// only a request signed with that endpoint's own secret gets through.
func (s *Service) relayRoutes() []apiRoute {
	return []apiRoute{
		{http.MethodPost, "/relay/v1/endpoints", s.requireAPIKey(s.ensureRelayEndpoint)},
		{http.MethodGet, "/relay/v1/endpoints/{id}/listen", s.requireAPIKey(s.attachRelay)},
	}
}

// isRelayEndpoint reports whether ep's URL is its own relay URL.
func (s *Store) isRelayEndpoint(ep *configv1.Endpoint) bool {
	id, ok := s.relayBase.MatchString(ep.GetUrl())
	return ok && id == ep.GetId()
}

// checkRelayURL says how applyPatch treats a URL under the relay base: the
// endpoint's own relay URL is accepted without the SSRF check (the relay
// base is the operator's, and is often internal); another endpoint's is
// refused. Other URLs are not relay URLs (relay false).
func (s *Store) checkRelayURL(endpointID, u string) (relay bool, err error) {
	id, ok := s.relayBase.MatchString(u)
	if !ok {
		return false, nil
	}
	if id != endpointID {
		return true, invalid("url", "is the relay URL of another endpoint; relay endpoints are made by `pulsehooks listen`")
	}
	return true, nil
}

type relayEndpointBody struct {
	Name       string    `json:"name"`
	EventTypes *[]string `json:"event_types"`
}

type relayEndpointView struct {
	Endpoint   endpointView `json:"endpoint"`
	Created    bool         `json:"created"`
	SecretHint string       `json:"secret_hint"`
	ListenPath string       `json:"listen_path"`
}

// ensureRelayEndpoint finds the tenant's relay endpoint named body.name, or
// creates it: an endpoint whose URL is its relay URL. A found one is enabled
// again, and given the filter when event_types is present.
func (s *Service) ensureRelayEndpoint(w http.ResponseWriter, r *http.Request, tenantID string) {
	var body relayEndpointBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	if body.Name == "" {
		body.Name = "default"
	}
	desc, err := checkDescription("name", relayDescriptionPrefix+body.Name)
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	ctx := r.Context()
	var found *configv1.Endpoint
	for after := ""; found == nil; {
		eps, more, err := s.store.ListEndpoints(ctx, tenantID, after, maxPageLimit)
		if err != nil {
			writeErr(w, r, s.log, err)
			return
		}
		for _, ep := range eps {
			if ep.GetDescription() == desc && s.store.isRelayEndpoint(ep) {
				found = ep
				break
			}
		}
		if !more || len(eps) == 0 {
			break
		}
		after = eps[len(eps)-1].GetId()
	}
	status, created := http.StatusOK, false
	switch {
	case found == nil:
		id := ids.New(ids.Endpoint)
		in := EndpointInput{ID: id, URL: s.store.relayBase.EndpointURL(id), Description: desc}
		if body.EventTypes != nil {
			in.EventTypes = *body.EventTypes
		}
		found, err = s.store.CreateEndpoint(ctx, tenantID, in)
		status, created = http.StatusCreated, true
	case !found.GetEnabled() || (body.EventTypes != nil && !slices.Equal(found.GetEventTypes(), *body.EventTypes)):
		enabled := true
		found, err = s.store.UpdateEndpoint(ctx, tenantID, found.GetId(), EndpointPatch{Enabled: &enabled, EventTypes: body.EventTypes})
	}
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	hint := CurrentSecret(found)
	if len(hint) > 10 {
		hint = hint[:10] + "…"
	}
	writeJSON(w, status, relayEndpointView{
		Endpoint:   newEndpointView(found),
		Created:    created,
		SecretHint: hint,
		ListenPath: "/relay/v1/endpoints/" + found.GetId() + "/listen",
	})
}

// attachRelay serves the WebSocket of a listener of the tenant's relay
// endpoint. Another tenant's endpoint is 404, like everywhere in the API.
func (s *Service) attachRelay(w http.ResponseWriter, r *http.Request, tenantID string) {
	ep, err := s.store.GetEndpoint(r.Context(), tenantID, r.PathValue("id"))
	if err != nil {
		writeErr(w, r, s.log, err)
		return
	}
	if !s.store.isRelayEndpoint(ep) {
		writeError(w, http.StatusConflict, "not_relay_endpoint", "endpoint "+ep.GetId()+" is not a relay endpoint (its URL is not "+s.store.relayBase.EndpointURL(ep.GetId())+")")
		return
	}
	s.relay.Attach(w, r, tenantID, ep.GetId())
}

// newRelay builds the relay over the service's NATS connection and store.
func newRelay(s *Service) (*relay.Relay, error) {
	return relay.New(relay.Deps{NATS: s.nc, Endpoint: s.store.GetEndpoint, Logger: s.log.With("component", "relay")})
}

// parseRelayBase resolves the relay base: RelayURL, else the public URL.
func parseRelayBase(cfg Config, public string) (relayurl.Base, error) {
	raw := cfg.RelayURL
	if raw == "" {
		raw = public
	}
	return relayurl.Parse(raw)
}
