package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"io"
	"sync"
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

// signer signs and verifies cookie values with HMAC-SHA256. The first key
// signs; every key verifies, so keys can be rotated without logging
// everybody out.
type signer struct {
	pools []*sync.Pool // one pool of keyed HMAC states per key; [0] signs
}

// signingDomain separates our MACs from any other use of the same key.
const signingDomain = "websession/v1 cookie\x00"

func newSigner(keys [][]byte) *signer {
	s := &signer{}
	for _, k := range keys {
		key := append([]byte(nil), k...)
		s.pools = append(s.pools, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	return s
}

func (s *signer) mac(p *sync.Pool, name, id string, out *[sha256.Size]byte) {
	h := p.Get().(hash.Hash)
	h.Reset()
	io.WriteString(h, signingDomain)
	io.WriteString(h, name)
	h.Write([]byte{0})
	io.WriteString(h, id)
	h.Sum(out[:0])
	p.Put(h)
}

// sign returns the cookie value for id: id "." base64url(MAC).
func (s *signer) sign(name, id string) string {
	var sum [sha256.Size]byte
	s.mac(s.pools[0], name, id, &sum)
	var out [signedLen]byte
	copy(out[:], id)
	out[idLen] = '.'
	b64.Encode(out[idLen+1:], sum[:])
	return string(out[:])
}

// verify reports whether sig (base64url) is a valid MAC of id under any key,
// comparing in constant time.
func (s *signer) verify(name, id, sig string) bool {
	var want [sha256.Size]byte
	if n, err := b64.Decode(want[:], []byte(sig)); err != nil || n != sha256.Size {
		return false
	}
	ok := false
	for _, p := range s.pools {
		var sum [sha256.Size]byte
		s.mac(p, name, id, &sum)
		// Check every key, so timing does not tell which one matched.
		if hmac.Equal(sum[:], want[:]) {
			ok = true
		}
	}
	return ok
}
