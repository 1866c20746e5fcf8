package session

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The benchmarks here keep the evidence for each hand-written hot path next
// to the code: every "ours" has the standard library's way beside it, so
// that a path which stops paying for itself shows up, and goes.
//
//	go test -run '^$' -bench . -benchmem

// sampleSession is a session-sized stored form: the counter plus a user
// name, a CSRF token and a few flags.
var sampleSession = []byte(`{"v":1,"ip":"192.0.2.1","data":{"count":1,"csrf":"lHq3vV7pJ6mA0sD2fG4hJ8kL","flash":"","theme":"dark","user":"ann@example.com"}}`)

// stdEnvelope is the stored form as encoding/json would read it.
type stdEnvelope struct {
	V    int                        `json:"v"`
	IP   json.RawMessage            `json:"ip"`
	Data map[string]json.RawMessage `json:"data"`
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			env, err := decodeEnvelope(sampleSession)
			if err != nil || len(env.values) != 5 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var env stdEnvelope
			if err := json.Unmarshal(sampleSession, &env); err != nil || len(env.Data) != 5 {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeEnvelope(b *testing.B) {
	env, err := decodeEnvelope(sampleSession)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = encodeEnvelope(buf[:0], env.ip, &env.meta, env.values)
		}
		if string(buf) != string(sampleSession) {
			b.Fatalf("encoded %s", buf)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(stdEnvelope{V: 1, IP: env.ip, Data: env.values}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkValueCodec(b *testing.B) {
	b.Run("int/ours", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			raw, _ := encodeValue(i)
			var n int
			if err := decodeValue(raw, &n); err != nil || n != i {
				b.Fatal(err)
			}
		}
	})
	b.Run("int/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			raw, _ := json.Marshal(i)
			var n int
			if err := json.Unmarshal(raw, &n); err != nil || n != i {
				b.Fatal(err)
			}
		}
	})
	b.Run("string/ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, _ := encodeValue("ann@example.com")
			var s string
			if err := decodeValue(raw, &s); err != nil || s != "ann@example.com" {
				b.Fatal(err)
			}
		}
	})
	b.Run("string/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, _ := json.Marshal("ann@example.com")
			var s string
			if err := json.Unmarshal(raw, &s); err != nil || s != "ann@example.com" {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadCookie: a request carrying our cookie among a few others.
func BenchmarkReadCookie(b *testing.B) {
	m, err := New(newMapStore(), WithCleanupInterval(0))
	if err != nil {
		b.Fatal(err)
	}
	id := strings.Repeat("A", idLen)
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "_ga=GA1.2.3.4; theme=dark; "+DefaultCookieName+"="+id+"; lang=en")
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ids cookieIDs
			if !m.readCookie(r, &ids) || ids.n != 1 {
				b.Fatal("not found")
			}
		}
	})
	b.Run("CookiesNamed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cs := r.CookiesNamed(DefaultCookieName)
			if len(cs) != 1 || !canonicalB64(cs[0].Value, idBytes) {
				b.Fatal("not found")
			}
		}
	})
}

// BenchmarkMiddleware measures core's request path over the in-package
// mapStore, so that a change to core is measured in core: a request that
// never uses its session, a read-only one, the counter, and a new session.
func BenchmarkMiddleware(b *testing.B) {
	m, err := New(newMapStore(), WithCleanupInterval(0), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var out []byte
	mux := http.NewServeMux()
	mux.HandleFunc("/none", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") })
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		n, _ := Get[int](FromContext(r.Context()), "count")
		out = strconv.AppendInt(out[:0], int64(n), 10)
		w.Write(out)
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		n, _ := Get[int](s, "count")
		if err := s.Set("count", n+1); err != nil {
			b.Error(err)
		}
		out = strconv.AppendInt(out[:0], int64(n+1), 10)
		w.Write(out)
	})
	h := m.Middleware(mux)
	id := storeSessionDirect(b, m, map[string]any{"count": 0})
	w := &benchWriter{h: http.Header{}}
	for _, path := range []string{"/none", "/read", "/count"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			r, _ := http.NewRequest("GET", path, nil)
			r.Header.Set("Cookie", DefaultCookieName+"="+id)
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
	b.Run("new", func(b *testing.B) {
		r, _ := http.NewRequest("GET", "/count", nil)
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	})
}

type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(int)             {}
