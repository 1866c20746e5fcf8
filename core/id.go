package session

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
)

const (
	// idBytes is the entropy of a session id: 256 bits.
	idBytes = 32
	// idLen is the length of an id in unpadded base64url.
	idLen = 43
	// sigLen is the length of a cookie signature in unpadded base64url
	// (a full HMAC-SHA256).
	sigLen = 43
	// signedLen is id + "." + signature.
	signedLen = idLen + 1 + sigLen
)

var b64 = base64.RawURLEncoding.Strict()

// newID draws a fresh id from r (crypto/rand.Reader outside tests).
func newID(r io.Reader) (string, error) {
	var raw [idBytes]byte
	if _, err := io.ReadFull(r, raw[:]); err != nil {
		return "", err
	}
	var out [idLen]byte
	b64.Encode(out[:], raw[:])
	return string(out[:]), nil
}

// canonicalB64 reports whether s is the canonical unpadded base64url
// encoding of exactly n bytes. Non-canonical spellings (stray low bits in
// the last character) decode to the same bytes; refusing them means one id
// has exactly one cookie value.
func canonicalB64(s string, n int) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(n) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isB64URL(s[i]) {
			return false
		}
	}
	var buf [64]byte
	got, err := b64.Decode(buf[:], []byte(s))
	return err == nil && got == n
}

// isB64URL reports whether c is in the base64url alphabet, which is also
// the alphabet of store keys (ValidKey).
func isB64URL(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// storeKey derives the store key of an id: SHA-256, base64url. The store
// never sees the id itself, so a leaked table or directory holds no usable
// cookie, and no cookie byte ever becomes part of a path or a query.
func storeKey(id string) string {
	var buf [idLen]byte // on the stack: []byte(id) would escape at 43 bytes
	sum := sha256.Sum256(buf[:copy(buf[:], id)])
	var out [idLen]byte
	b64.Encode(out[:], sum[:])
	return string(out[:])
}
