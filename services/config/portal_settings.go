package config

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

// PortalSettings are the portal's branding and embedding. The operator sets
// them for the deployment (Config.Portal, PULSEHOOKS_PORTAL_*) and per
// tenant (the tenant record's "portal", PATCH /admin/v1/tenants/{id}); a
// tenant's field, when set, replaces the deployment's.
type PortalSettings struct {
	// ProductName replaces "pulsehooks" in the portal's title and header.
	ProductName string `json:"product_name,omitempty"`
	// LogoURL is an image shown in the header: https, or http on a
	// loopback host.
	LogoURL string `json:"logo_url,omitempty"`
	// PrimaryColor colours buttons, links and focus rings: #rgb or #rrggbb.
	PrimaryColor string `json:"primary_color,omitempty"`
	// Theme is light, dark or auto (the viewer's system setting).
	Theme string `json:"theme,omitempty"`
	// FrameAncestors are the origins (https://dash.example.com) allowed to
	// show the portal in an iframe; none means it cannot be framed.
	FrameAncestors []string `json:"frame_ancestors,omitempty"`
}

// Limits of portal settings.
const (
	maxProductNameLen = 64
	maxSettingURLLen  = 2048
	maxFrameAncestors = 16
)

var colorPattern = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// settingNames name each field in errors: as the API spells it under
// prefix, or as the environment variable.
type settingNames struct{ productName, logoURL, primaryColor, theme, frameAncestors string }

// apiSettingNames are the fields of the operator API's "portal" object.
var apiSettingNames = settingNames{"portal.product_name", "portal.logo_url", "portal.primary_color", "portal.theme", "portal.frame_ancestors"}

// envSettingNames are the environment variables of the deployment's settings.
var envSettingNames = settingNames{"PULSEHOOKS_PORTAL_PRODUCT_NAME", "PULSEHOOKS_PORTAL_LOGO_URL", "PULSEHOOKS_PORTAL_PRIMARY_COLOR", "PULSEHOOKS_PORTAL_THEME", "PULSEHOOKS_PORTAL_FRAME_ANCESTORS"}

// normalize checks the settings and returns them trimmed, with origins in
// their canonical form (lower case, no default port); errors name the
// field as names spells it.
func (p PortalSettings) normalize(names settingNames) (PortalSettings, error) {
	p.ProductName = strings.TrimSpace(p.ProductName)
	if n := utf8.RuneCountInString(p.ProductName); n > maxProductNameLen || strings.IndexFunc(p.ProductName, unicode.IsControl) >= 0 {
		return p, invalid(names.productName, "must be at most %d characters with no control characters (it has %d)", maxProductNameLen, n)
	}
	if p.LogoURL = strings.TrimSpace(p.LogoURL); p.LogoURL != "" {
		if _, err := settingURL(p.LogoURL); err != nil {
			return p, invalid(names.logoURL, "%v", err)
		}
	}
	if p.PrimaryColor = strings.TrimSpace(p.PrimaryColor); p.PrimaryColor != "" && !colorPattern.MatchString(p.PrimaryColor) {
		return p, invalid(names.primaryColor, "must be a colour as #rgb or #rrggbb, such as #1f883d; got %q", p.PrimaryColor)
	}
	switch p.Theme = strings.ToLower(strings.TrimSpace(p.Theme)); p.Theme {
	case "", "light", "dark", "auto":
	default:
		return p, invalid(names.theme, "must be light, dark or auto (follow the viewer's system setting); got %q", p.Theme)
	}
	if len(p.FrameAncestors) > maxFrameAncestors {
		return p, invalid(names.frameAncestors, "lists %d origins; at most %d are allowed", len(p.FrameAncestors), maxFrameAncestors)
	}
	var origins []string
	for _, o := range p.FrameAncestors {
		norm, err := settingOrigin(o)
		if err != nil {
			return p, invalid(names.frameAncestors, "%v", err)
		}
		origins = append(origins, norm)
	}
	p.FrameAncestors = origins
	return p, nil
}

// settingURL parses an absolute https URL, or http on a loopback host.
func settingURL(s string) (*url.URL, error) {
	if len(s) > maxSettingURLLen {
		return nil, fmt.Errorf("must be at most %d characters", maxSettingURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("must be an absolute https:// URL, got %q", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("must not hold a user name or password, got %q", s)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("must use https (http only on localhost), got %q", s)
	}
	return u, nil
}

// settingOrigin checks an origin such as https://dash.example.com and
// returns it lower case without a default port.
func settingOrigin(s string) (string, error) {
	u, err := settingURL(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%q is not an origin: %w", s, err)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q is not an origin: give only scheme, host and port, such as https://dash.example.com", s)
	}
	host := strings.ToLower(u.Hostname())
	if strings.ContainsAny(host, "*") {
		return "", fmt.Errorf("%q is not an origin: wildcards are not allowed", s)
	}
	port := u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// over returns the settings with each field unset in p taken from def.
func (p *PortalSettings) over(def PortalSettings) PortalSettings {
	if p == nil {
		return def
	}
	out := *p
	if out.ProductName == "" {
		out.ProductName = def.ProductName
	}
	if out.LogoURL == "" {
		out.LogoURL = def.LogoURL
	}
	if out.PrimaryColor == "" {
		out.PrimaryColor = def.PrimaryColor
	}
	if out.Theme == "" {
		out.Theme = def.Theme
	}
	if out.FrameAncestors == nil {
		out.FrameAncestors = def.FrameAncestors
	}
	return out
}

// orNil returns nil for settings with nothing set, so a tenant record
// shows "portal" only when the operator set something.
func (p *PortalSettings) orNil() *PortalSettings {
	if p == nil || (p.ProductName == "" && p.LogoURL == "" && p.PrimaryColor == "" && p.Theme == "" && p.FrameAncestors == nil) {
		return nil
	}
	return p
}

// branding is the settings as the portal takes them.
func (p PortalSettings) branding() portal.Branding {
	return portal.Branding{ProductName: p.ProductName, LogoURL: p.LogoURL, PrimaryColor: p.PrimaryColor, Theme: p.Theme, FrameAncestors: p.FrameAncestors}
}

// SetTenantPortal replaces a tenant's portal settings (checked by
// normalize; nil or empty clears them) and returns the tenant.
func (s *Store) SetTenantPortal(ctx context.Context, id string, p *PortalSettings) (Tenant, error) {
	rec, err := s.updateTenant(ctx, id, "portal settings", func(rec *tenantRecord) { rec.Portal = p.orNil() })
	if err != nil {
		return Tenant{}, err
	}
	s.log.InfoContext(ctx, "tenant portal settings set", "tenant_id", id, "portal", rec.Portal)
	return Tenant(rec), nil
}
