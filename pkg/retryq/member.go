package retryq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Member encoding. A scheduled item is a sorted-set member of a few dozen
// bytes:
//
//	seq      1 byte n (0–8), then the n low bytes of Seq, big-endian
//	header   1 byte: format (high nibble) | Flags (low nibble)
//	attempt  uvarint
//	hops     uvarint
//	resend   only when the format has the resend bit (8): uvarint length,
//	         then the resend id as is
//	link     only when the format has the link bit (4): 1 byte n, then n
//	         bytes: 8, the span id of Item.Link (its trace is the event's),
//	         or 24, the trace id of Item.LinkTrace and that span id
//	endpoint format 1: the 16 bytes of the ULID of an "ep_<ULID>" id
//	         format 2: the id as is (any other id)
//
// The sequence comes first and its length prefix keeps byte order equal to
// numeric order, so items due at the same time are claimed in event order.
// Items without a resend id or a link encode exactly as before those bits
// existed; workers older than a bit cannot read members with it (they remove
// them as malformed).
const (
	formatULID   byte = 1
	formatRaw    byte = 2
	formatLink   byte = 4
	formatResend byte = 8

	endpointPrefix = "ep_"
	ulidLen        = 26
	// maxEndpointID bounds the endpoint id, and maxResendID the resend id,
	// and so a member (≤ 534 bytes).
	maxEndpointID = 256
	maxResendID   = 256
)

// MaxFlags is the largest value of Item.Flags.
const MaxFlags = 15

// crockford is Crockford's base32 alphabet, as pkg/ids encodes ULIDs.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// crockfordIndex maps a byte to its base32 value, or 0xFF.
var crockfordIndex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i := 0; i < len(crockford); i++ {
		t[crockford[i]] = byte(i)
	}
	return t
}()

// ErrMalformed is wrapped by errors for members that do not decode.
var ErrMalformed = errors.New("retryq: malformed member")

// Encode returns the member of it. It fails only for an item that cannot be
// stored: an empty or over-long endpoint id, or Flags above MaxFlags.
func Encode(it Item) (string, error) {
	if it.Endpoint == "" || len(it.Endpoint) > maxEndpointID {
		return "", fmt.Errorf("retryq: endpoint id of %d bytes (want 1–%d)", len(it.Endpoint), maxEndpointID)
	}
	if it.Flags > MaxFlags {
		return "", fmt.Errorf("retryq: flags %d above %d", it.Flags, MaxFlags)
	}
	if it.LinkTrace.IsValid() && !it.Link.IsValid() {
		return "", errors.New("retryq: a link trace without a link span")
	}
	if len(it.ResendID) > maxResendID {
		return "", fmt.Errorf("retryq: resend id of %d bytes (want at most %d)", len(it.ResendID), maxResendID)
	}
	b := make([]byte, 0, 32+len(it.ResendID))
	b = appendOrdered(b, it.Seq)
	ulid, compact := parseULID(it.Endpoint)
	format := formatRaw
	if compact {
		format = formatULID
	}
	if it.ResendID != "" {
		format |= formatResend
	}
	if it.Link.IsValid() {
		format |= formatLink
	}
	b = append(b, format<<4|it.Flags)
	b = binary.AppendUvarint(b, uint64(it.Attempt))
	b = binary.AppendUvarint(b, uint64(it.Hops))
	if it.ResendID != "" {
		b = binary.AppendUvarint(b, uint64(len(it.ResendID)))
		b = append(b, it.ResendID...)
	}
	if it.Link.IsValid() {
		if it.LinkTrace.IsValid() {
			b = append(b, byte(len(it.LinkTrace)+len(it.Link)))
			b = append(b, it.LinkTrace[:]...)
		} else {
			b = append(b, byte(len(it.Link)))
		}
		b = append(b, it.Link[:]...)
	}
	if compact {
		b = append(b, ulid[:]...)
	} else {
		b = append(b, it.Endpoint...)
	}
	return string(b), nil
}

// Decode parses a member made by Encode.
func Decode(member string) (Item, error) {
	b := []byte(member)
	if len(b) == 0 || b[0] > 8 || len(b) < 1+int(b[0])+1 {
		return Item{}, fmt.Errorf("%w: sequence", ErrMalformed)
	}
	var it Item
	n := int(b[0])
	for _, c := range b[1 : 1+n] {
		it.Seq = it.Seq<<8 | uint64(c)
	}
	b = b[1+n:]
	format, flags := b[0]>>4, b[0]&0x0F
	it.Flags = flags
	b = b[1:]
	attempt, k := binary.Uvarint(b)
	if k <= 0 || attempt > 1<<32-1 {
		return Item{}, fmt.Errorf("%w: attempt", ErrMalformed)
	}
	b = b[k:]
	hops, k := binary.Uvarint(b)
	if k <= 0 || hops > 1<<32-1 {
		return Item{}, fmt.Errorf("%w: hops", ErrMalformed)
	}
	b = b[k:]
	it.Attempt, it.Hops = uint32(attempt), uint32(hops)
	if format&formatResend != 0 {
		format &^= formatResend
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > maxResendID || uint64(len(b)-k) < n {
			return Item{}, fmt.Errorf("%w: resend id", ErrMalformed)
		}
		it.ResendID = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	if format&formatLink != 0 {
		format &^= formatLink
		if len(b) == 0 || (b[0] != 8 && b[0] != 24) || len(b) < 1+int(b[0]) {
			return Item{}, fmt.Errorf("%w: link", ErrMalformed)
		}
		n := int(b[0])
		b = b[1:]
		if n == 24 {
			it.LinkTrace = trace.TraceID(b[:16])
			b = b[16:]
		}
		it.Link = trace.SpanID(b[:8])
		b = b[8:]
		if !it.Link.IsValid() {
			return Item{}, fmt.Errorf("%w: link span id", ErrMalformed)
		}
	}
	switch format {
	case formatULID:
		if len(b) != 16 {
			return Item{}, fmt.Errorf("%w: endpoint ULID of %d bytes", ErrMalformed, len(b))
		}
		it.Endpoint = endpointPrefix + formatULIDBytes([16]byte(b))
	case formatRaw:
		if len(b) == 0 || len(b) > maxEndpointID {
			return Item{}, fmt.Errorf("%w: endpoint id of %d bytes (want 1–%d)", ErrMalformed, len(b), maxEndpointID)
		}
		it.Endpoint = string(b)
	default:
		return Item{}, fmt.Errorf("%w: format %d", ErrMalformed, format)
	}
	return it, nil
}

// appendOrdered appends v as a length byte and its significant bytes,
// big-endian; shorter encodings are smaller numbers, so byte order is
// numeric order.
func appendOrdered(b []byte, v uint64) []byte {
	n := 0
	for x := v; x > 0; x >>= 8 {
		n++
	}
	b = append(b, byte(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// parseULID returns the 16 bytes of an "ep_<ULID>" id whose text is the
// canonical encoding of those bytes, so that decoding gives the id back.
func parseULID(id string) ([16]byte, bool) {
	var out [16]byte
	rest, ok := strings.CutPrefix(id, endpointPrefix)
	if !ok || len(rest) != ulidLen || rest[0] > '7' {
		return out, false
	}
	var hi, lo uint64
	for i := 0; i < ulidLen; i++ {
		v := crockfordIndex[rest[i]]
		if v == 0xFF {
			return out, false
		}
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(v)
	}
	binary.BigEndian.PutUint64(out[0:8], hi)
	binary.BigEndian.PutUint64(out[8:16], lo)
	return out, true
}

// formatULIDBytes writes 128 bits as 26 base32 characters.
func formatULIDBytes(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [ulidLen]byte
	for i := ulidLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
