package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"io"
	"sync"
)

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

// verdict is what verify found.
type verdict uint8

const (
	unsigned      verdict = iota // no key made this signature
	signedCurrent                // the signing key did
	signedOld                    // a verify-only key did: re-sign
)

// verify tells whether sig (base64url) is a valid MAC of id, and under
// which key, comparing in constant time.
func (s *signer) verify(name, id, sig string) verdict {
	var want [sha256.Size]byte
	if n, err := b64.Decode(want[:], []byte(sig)); err != nil || n != sha256.Size {
		return unsigned
	}
	v := unsigned
	for i, p := range s.pools {
		var sum [sha256.Size]byte
		s.mac(p, name, id, &sum)
		// Check every key, so timing does not tell which one matched.
		if hmac.Equal(sum[:], want[:]) && v == unsigned {
			v = signedOld
			if i == 0 {
				v = signedCurrent
			}
		}
	}
	return v
}
