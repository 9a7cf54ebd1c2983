package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/webhookheaders"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// errNoSecret means an endpoint has no usable signing secret; nothing is sent.
var errNoSecret = errors.New("endpoint has no usable signing secret")

// buildRequest makes the POST of d to ep at time now: the exact payload, the
// Standard Webhooks headers signed with every unexpired secret (current
// first), content type and user agent, then the endpoint's custom headers
// (those that would override ours, or are hop-by-hop, are skipped) and basic
// auth. skipped lists the custom headers left out.
func buildRequest(ctx context.Context, ep *configv1.Endpoint, d *eventv1.Delivery, userAgent string, now time.Time) (req *http.Request, skipped []string, err error) {
	signer, err := signerFor(ep, now)
	if err != nil {
		return nil, nil, err
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, ep.GetUrl(), bytes.NewReader(d.GetPayload()))
	if err != nil {
		return nil, nil, fmt.Errorf("endpoint URL: %w", err)
	}
	h := req.Header
	for name, value := range ep.GetHeaders() {
		if webhookheaders.Reserved(name) || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			skipped = append(skipped, name)
			continue
		}
		h.Set(name, value)
	}
	h.Set(signature.HeaderID, d.GetMessageId())
	h.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(signature.HeaderSignature, signer.Sign(d.GetMessageId(), now, d.GetPayload()))
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	if ba := ep.GetBasicAuth(); ba.GetUsername() != "" || ba.GetPassword() != "" {
		req.SetBasicAuth(ba.GetUsername(), ba.GetPassword())
	}
	return req, skipped, nil
}

// signerFor returns a Signer over the endpoint's secrets that have not
// expired at now, in the endpoint's order (current first).
func signerFor(ep *configv1.Endpoint, now time.Time) (*signature.Signer, error) {
	var keys []string
	for _, s := range ep.GetSecrets() {
		if exp := s.GetExpiresAt(); exp != nil && !exp.AsTime().After(now) {
			continue
		}
		keys = append(keys, s.GetKey())
	}
	if len(keys) == 0 {
		return nil, errNoSecret
	}
	signer, err := signature.NewSigner(keys...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoSecret, err)
	}
	return signer, nil
}
