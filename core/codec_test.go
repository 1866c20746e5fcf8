package session

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	values := map[string]json.RawMessage{
		"count":          json.RawMessage(`3`),
		"name":           json.RawMessage(`"ann \"the\" <admin>"`),
		"nested":         json.RawMessage(`{"a":[1,{"b":"}"}],"c":null}`),
		"ключ \u2028 \"": json.RawMessage(`true`),
		"":               json.RawMessage(`[]`),
	}
	data := encodeEnvelope(nil, []byte(`"2001:db8::1"`), nil, values)
	if !json.Valid(data) {
		t.Fatalf("not JSON: %s", data)
	}
	if n := encodedSize([]byte(`"2001:db8::1"`), nil, values); n != len(data) {
		t.Fatalf("encodedSize = %d, encoding is %d bytes", n, len(data))
	}
	env, err := decodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	if string(env.ip) != `"2001:db8::1"` || !reflect.DeepEqual(env.values, values) {
		t.Fatalf("round trip: %q %v", env.ip, env.values)
	}
	// Keys are sorted: equal sessions encode to equal bytes.
	again := encodeEnvelope(nil, []byte(`"2001:db8::1"`), nil, maps.Clone(values))
	if string(again) != string(data) {
		t.Fatal("encoding is not deterministic")
	}
	// encoding/json agrees on what we wrote.
	var std struct {
		V    int                        `json:"v"`
		IP   string                     `json:"ip"`
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &std); err != nil || std.V != 1 || len(std.Data) != len(values) {
		t.Fatalf("encoding/json reads %+v, %v", std, err)
	}
}

func TestEnvelopeToleratesWhitespaceAndUnknownMembers(t *testing.T) {
	env, err := decodeEnvelope([]byte(" {\n \"future\" : {\"x\":[1,2]} , \"data\" : { \"a\" : 1 , \"b\":\"x\" } , \"v\" : 1 , \"ip\":\"h\" } "))
	if err != nil {
		t.Fatal(err)
	}
	if string(env.values["a"]) != "1" || string(env.values["b"]) != `"x"` || string(env.ip) != `"h"` {
		t.Fatalf("%+v", env)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	for _, s := range []string{"", "null", "1", `"x"`, "[]", "{}", `{"v":1}`, `{"v":1,"data":[]}`, `{"v":"1","data":{}}`,
		`{"v":1.5,"data":{}}`, `{"v":1,"data":{},`, `{"v":1,"ip":3,"data":{}}`, strings.Repeat("[", 100)} {
		if _, err := decodeEnvelope([]byte(s)); err == nil {
			t.Errorf("decodeEnvelope(%q) accepted", s)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"v":1,"ip":"a","data":{"k":[1,"]",{"x":"\\""}]}}`))
	f.Add([]byte(`{"v":1,"data":{"\u00e9":1}}`))
	f.Add([]byte(`{"data":{"a":"b\\\\"},"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := decodeEnvelope(data)
		if err != nil {
			return
		}
		// Whatever decodes must agree with encoding/json and re-encode to
		// something that decodes to the same values.
		var std struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("we decoded what encoding/json refuses: %v", err)
		}
		for k, v := range std.Data {
			if got, ok := env.values[k]; !ok || !jsonEqual(got, v) {
				t.Fatalf("key %q: ours %s, encoding/json %s", k, got, v)
			}
		}
		back, err := decodeEnvelope(encodeEnvelope(nil, env.ip, &env.meta, env.values))
		if err != nil || !reflect.DeepEqual(back.values, env.values) || string(back.ip) != string(env.ip) {
			t.Fatalf("re-encoding changed the session: %v", err)
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func FuzzCookieValue(f *testing.F) {
	m, err := New(newMapStore(), WithCleanupInterval(0), WithSecretKey([]byte(strings.Repeat("s", 32))))
	if err != nil {
		f.Fatal(err)
	}
	good := m.cookieValue(strings.Repeat("A", 43))
	f.Add(good)
	f.Add("../../etc/passwd")
	f.Add(good[:43])
	f.Fuzz(func(t *testing.T, v string) {
		id, _, ok := m.parseCookieValue(v)
		if !ok {
			return
		}
		if !ValidKey(id) || len(id) != idLen || m.cookieValue(id) != v {
			t.Fatalf("accepted %q as id %q", v, id)
		}
	})
}

func TestValidKey(t *testing.T) {
	for _, k := range []string{"a", "A-_9", strings.Repeat("k", MaxKeyLen)} {
		if !ValidKey(k) {
			t.Errorf("ValidKey(%q) = false", k)
		}
	}
	for _, k := range []string{"", ".", "..", "a/b", `a\b`, "a.b", "a\x00", "é", " a", strings.Repeat("k", MaxKeyLen+1)} {
		if ValidKey(k) {
			t.Errorf("ValidKey(%q) = true", k)
		}
	}
}

func TestValueFastPathsMatchEncodingJSON(t *testing.T) {
	for _, v := range []any{0, -7, 1 << 40, int64(-1 << 62), true, false, "", "plain", "quo\"te", "<&>", "é\u2028\x01"} {
		fast, err := encodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		std, _ := json.Marshal(v)
		if string(fast) != string(std) {
			t.Errorf("encodeValue(%#v) = %s, encoding/json %s", v, fast, std)
		}
	}
	for _, raw := range []string{"12", "-3", "1e3", "1.5", "null", `"7"`, "true", `"a\"b"`, `"\u00e9"`} {
		var fastI, stdI int
		e1 := decodeValue(json.RawMessage(raw), &fastI)
		e2 := json.Unmarshal([]byte(raw), &stdI)
		if (e1 == nil) != (e2 == nil) || fastI != stdI {
			t.Errorf("int from %s: ours %d,%v; encoding/json %d,%v", raw, fastI, e1, stdI, e2)
		}
		var fastS, stdS string
		e1 = decodeValue(json.RawMessage(raw), &fastS)
		e2 = json.Unmarshal([]byte(raw), &stdS)
		if (e1 == nil) != (e2 == nil) || fastS != stdS {
			t.Errorf("string from %s: ours %q,%v; encoding/json %q,%v", raw, fastS, e1, stdS, e2)
		}
		var fastB, stdB bool
		e1 = decodeValue(json.RawMessage(raw), &fastB)
		e2 = json.Unmarshal([]byte(raw), &stdB)
		if (e1 == nil) != (e2 == nil) || fastB != stdB {
			t.Errorf("bool from %s: ours %v,%v; encoding/json %v,%v", raw, fastB, e1, stdB, e2)
		}
	}
}
