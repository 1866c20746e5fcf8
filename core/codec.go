package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// The stored form of a session is one JSON object:
//
//	{"v":1,"ip":"192.0.2.1","data":{"count":3,"user":"ann"}}
//
// "v" is the format version, "ip" the client IP that created the session,
// "data" the values, each the JSON its Set produced. JSON, and never gob or
// any codec that builds types named by the stored bytes: whoever can write
// the store can at worst change values, never make the process instantiate
// or run anything. Unknown top-level members are ignored, so a later
// version can add some without breaking older readers.
const formatVersion = 1

// errCorrupt marks stored data that is not a session of ours.
var errCorrupt = errors.New("session: stored data is not a valid session")

type envelope struct {
	ip     string
	values map[string]json.RawMessage
}

// encodeEnvelope appends the stored form to dst. Keys are written sorted,
// so equal sessions encode to equal bytes.
func encodeEnvelope(dst []byte, ip string, values map[string]json.RawMessage) []byte {
	dst = append(dst, `{"v":1,"ip":`...)
	dst = appendJSONString(dst, ip)
	dst = append(dst, `,"data":{`...)
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = append(dst, values[k]...)
	}
	return append(dst, "}}"...)
}

// encodedSize is len(encodeEnvelope(nil, ip, values)) without encoding.
func encodedSize(ip string, values map[string]json.RawMessage) int {
	n := len(`{"v":1,"ip":,"data":{}}`) + jsonStringLen(ip)
	for k, v := range values {
		n += jsonStringLen(k) + 1 + len(v) + 1
	}
	if len(values) > 0 {
		n-- // no comma after the last member
	}
	return n
}

// decodeEnvelope parses the stored form. The returned raw values alias
// data, which the caller must own (Store.Load returns a fresh copy).
func decodeEnvelope(data []byte) (envelope, error) {
	var env envelope
	if !json.Valid(data) {
		return env, errCorrupt
	}
	p := parser{b: data}
	if p.next() != '{' {
		return env, errCorrupt
	}
	version := -1
	sawData := false
	err := p.members(func(key string, val []byte) error {
		switch key {
		case "v":
			n, err := strconv.Atoi(string(val))
			if err != nil {
				return errCorrupt
			}
			version = n
		case "ip":
			var ip string
			if err := unquote(val, &ip); err != nil {
				return errCorrupt
			}
			env.ip = ip
		case "data":
			if val[0] != '{' {
				return errCorrupt
			}
			sawData = true
			env.values = make(map[string]json.RawMessage)
			q := parser{b: val}
			q.next()
			return q.members(func(k string, v []byte) error {
				env.values[k] = json.RawMessage(v)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return env, err
	}
	if version != formatVersion {
		return env, fmt.Errorf("%w: format version %d, want %d", errCorrupt, version, formatVersion)
	}
	if !sawData {
		return env, errCorrupt
	}
	return env, nil
}

// parser walks JSON already checked by json.Valid, so it only has to find
// where things end.
type parser struct {
	b []byte
	i int
}

func (p *parser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

// next skips space and consumes one byte.
func (p *parser) next() byte {
	p.skipSpace()
	if p.i >= len(p.b) {
		return 0
	}
	c := p.b[p.i]
	p.i++
	return c
}

// members calls fn for each member of the object whose '{' was consumed.
func (p *parser) members(fn func(key string, val []byte) error) error {
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.skipSpace()
		start := p.i
		p.skipString()
		var key string
		if err := unquote(p.b[start:p.i], &key); err != nil {
			return errCorrupt
		}
		if p.next() != ':' {
			return errCorrupt
		}
		p.skipSpace()
		vs := p.i
		p.skipValue()
		if err := fn(key, p.b[vs:p.i]); err != nil {
			return err
		}
		switch p.next() {
		case ',':
		case '}':
			return nil
		default:
			return errCorrupt
		}
	}
}

// skipString moves past the string starting at p.i.
func (p *parser) skipString() {
	p.i++ // opening quote
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
		case '"':
			p.i++
			return
		default:
			p.i++
		}
	}
}

// skipValue moves past the value starting at p.i.
func (p *parser) skipValue() {
	switch p.b[p.i] {
	case '"':
		p.skipString()
	case '{', '[':
		depth := 0
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '"':
				p.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					p.i++
					return
				}
			}
			p.i++
		}
	default: // number, true, false, null
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return
			}
			p.i++
		}
	}
}

// unquote decodes a JSON string, quickly when it holds no escapes.
func unquote(b []byte, dst *string) error {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		inner := b[1 : len(b)-1]
		plain := true
		for _, c := range inner {
			if c == '\\' || c < ' ' || c >= utf8.RuneSelf {
				plain = false
				break
			}
		}
		if plain {
			*dst = string(inner)
			return nil
		}
	}
	return json.Unmarshal(b, dst)
}

// appendJSONString appends s as a JSON string, escaping as encoding/json
// does (including <, > and &).
func appendJSONString(dst []byte, s string) []byte {
	if jsonPlain(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, _ := json.Marshal(s) // cannot fail for a string
	return append(dst, b...)
}

func jsonStringLen(s string) int {
	if jsonPlain(s) {
		return len(s) + 2
	}
	b, _ := json.Marshal(s)
	return len(b)
}

// jsonPlain reports whether s encodes as itself between quotes.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
