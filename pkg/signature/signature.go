// Package signature signs and verifies webhooks the Standard Webhooks v1 way:
// the signature is "v1," followed by the base64 HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>" under the endpoint's secret.
// Senders use Sign or a Signer; Go receivers use a Verifier.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// Header names of Standard Webhooks v1.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// versionV1 prefixes every v1 signature.
const versionV1 = "v1"

// Sign returns the v1 signature "v1,<base64>" of body sent as message msgID at
// time ts, under the decoded secret (see ParseSecret).
func Sign(secret []byte, msgID string, ts time.Time, body []byte) string {
	mac := computeMAC(secret, msgID, strconv.FormatInt(ts.Unix(), 10), body)
	return versionV1 + "," + base64.StdEncoding.EncodeToString(mac)
}

// computeMAC is HMAC-SHA256(secret, msgID + "." + timestamp + "." + body),
// with timestamp the decimal unix seconds exactly as sent in the header.
func computeMAC(secret []byte, msgID, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}
