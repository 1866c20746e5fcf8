package memory_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// benchWriter is a ResponseWriter that costs nothing, so that a benchmark
// measures the middleware and not httptest.ResponseRecorder.
type benchWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.body = append(w.body, p...)
	return len(p), nil
}
func (w *benchWriter) reset() {
	clear(w.h)
	w.status = 0
	w.body = w.body[:0]
}

func newBenchManager(b *testing.B, store session.Store) *session.Manager {
	m, err := session.New(store,
		session.WithInitializer(map[string]any{"count": 0}),
		session.WithCleanupInterval(0),
		session.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

var (
	counterHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, err := session.Get[int](s, "count")
		if err == nil {
			err = s.Set("count", n+1)
		}
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(strconv.AppendInt(nil, int64(n+1), 10))
	})
	readHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := session.Get[int](session.FromContext(r.Context()), "count")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(strconv.AppendInt(nil, int64(n), 10))
	})
	plainHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
)

// existingSession runs one counter request and returns the Cookie header
// that continues its session.
func existingSession(b *testing.B, h http.Handler) string {
	w := &benchWriter{h: http.Header{}}
	r, _ := http.NewRequest("GET", "/", nil)
	h.ServeHTTP(w, r)
	cookie, _, _ := strings.Cut(w.h.Get("Set-Cookie"), ";")
	if w.status != 200 || cookie == "" {
		b.Fatalf("setup request failed: %d %q", w.status, w.body)
	}
	return cookie
}

// serveLoop serves the same request (with cookie, if any) b.N times and
// returns the last response and the number of requests.
func serveLoop(b *testing.B, h http.Handler, cookie string) (*benchWriter, int) {
	w := &benchWriter{h: http.Header{}}
	r, _ := http.NewRequest("GET", "/", nil)
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, r)
		n++
	}
	return w, n
}

// BenchmarkMiddleware measures one request through the session middleware
// over the memory store: Untouched (the handler never looks at the
// session, against NoMiddleware), ReadOnly (an existing session is loaded
// and one value read), Counter (web.py's counter on an existing session)
// and New (a request without cookie creates a session with one value).
func BenchmarkMiddleware(b *testing.B) {
	b.Run("NoMiddleware", func(b *testing.B) {
		w := &benchWriter{h: http.Header{}}
		r, _ := http.NewRequest("GET", "/", nil)
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			plainHandler.ServeHTTP(w, r)
		}
	})
	b.Run("Untouched", func(b *testing.B) {
		m := newBenchManager(b, mustNew(b))
		w, _ := serveLoop(b, m.Middleware(plainHandler), existingSession(b, m.Middleware(counterHandler)))
		if string(w.body) != "ok" || len(w.h) != 0 {
			b.Fatalf("untouched request changed the response: %q %v", w.body, w.h)
		}
	})
	b.Run("ReadOnly", func(b *testing.B) {
		m := newBenchManager(b, mustNew(b))
		w, _ := serveLoop(b, m.Middleware(readHandler), existingSession(b, m.Middleware(counterHandler)))
		if string(w.body) != "1" {
			b.Fatalf("read %q, want 1", w.body)
		}
	})
	b.Run("Counter", func(b *testing.B) {
		m := newBenchManager(b, mustNew(b))
		w, n := serveLoop(b, m.Middleware(counterHandler), existingSession(b, m.Middleware(counterHandler)))
		if want := strconv.Itoa(n + 1); string(w.body) != want {
			b.Fatalf("count %q after %d increments, want %s", w.body, n, want)
		}
	})
	b.Run("New", func(b *testing.B) {
		store := mustNew(b)
		m := newBenchManager(b, store)
		w, n := serveLoop(b, m.Middleware(counterHandler), "")
		if store.Len() != n || w.h.Get("Set-Cookie") == "" {
			b.Fatalf("%d sessions stored after %d new-session requests", store.Len(), n)
		}
	})
	b.Run("ReadOnlyParallel", func(b *testing.B) {
		m := newBenchManager(b, mustNew(b))
		h := m.Middleware(readHandler)
		setup := m.Middleware(counterHandler)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			cookie := existingSession(b, setup)
			w := &benchWriter{h: http.Header{}}
			r, _ := http.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", cookie)
			ran := false
			for pb.Next() {
				w.reset()
				h.ServeHTTP(w, r)
				ran = true
			}
			if ran && string(w.body) != "1" {
				b.Errorf("read %q", w.body)
			}
		})
	})
	b.Run("CounterParallel", func(b *testing.B) {
		m := newBenchManager(b, mustNew(b))
		h := m.Middleware(counterHandler)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			cookie := existingSession(b, h)
			w := &benchWriter{h: http.Header{}}
			r, _ := http.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", cookie)
			n := 1
			for pb.Next() {
				w.reset()
				h.ServeHTTP(w, r)
				n++
			}
			if n > 1 && string(w.body) != strconv.Itoa(n) {
				b.Errorf("count %q, want %d", w.body, n)
			}
		})
	})
}

// BenchmarkMillionSessions fills the store with a million counter sessions,
// as the middleware stores them, and reports the heap cost per session.
func BenchmarkMillionSessions(b *testing.B) {
	const n = 1_000_000
	data := []byte(`{"v":1,"ip":"192.0.2.1","data":{"count":1}}`)
	now := time.Now()
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := mustNew(b)
		ctx := context.Background()
		for i := 0; i < n; i++ {
			// Keys shaped like the manager's: 43 base64url characters.
			key := fmt.Sprintf("%043d", i)
			if err := s.Create(ctx, key, session.Record{Data: data, ATime: now, Created: now}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s.Len() != n {
			b.Fatalf("Len = %d", s.Len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/session")
		runtime.KeepAlive(s)
	}
}

// BenchmarkOwner lists, then ends, the 10 sessions of one owner among 10k
// and 1M sessions of 1k and 100k owners: the cost must not grow with the
// total. (Ending re-creates the sessions, off the clock, for the next
// round.)
func BenchmarkOwner(b *testing.B) {
	ctx := context.Background()
	for _, total := range []int{10_000, 1_000_000} {
		s := mustNew(b)
		owners := total / 10
		data := []byte(`{"v":1,"ip":"","owner":"u","data":{"user":"u"}}`)
		ownerOf := func(i int) string { return fmt.Sprintf("owner-%d", i%owners) }
		keyOf := func(i int) string { return fmt.Sprintf("key-%d", i) }
		for i := range total {
			if err := s.Create(ctx, keyOf(i), session.Record{Data: data, ATime: t0, Created: t0, Owner: ownerOf(i)}); err != nil {
				b.Fatal(err)
			}
		}
		target := ownerOf(42)
		b.Run(fmt.Sprintf("List/sessions=%d", total), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				recs, err := s.LoadOwned(ctx, target)
				if err != nil || len(recs) != 10 {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		})
		b.Run(fmt.Sprintf("EndAll/sessions=%d", total), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				recs, err := s.LoadOwned(ctx, target)
				if err != nil || len(recs) != 10 {
					b.Fatalf("%d records, %v", len(recs), err)
				}
				for _, r := range recs {
					if err := s.Delete(ctx, r.Key); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				for _, r := range recs {
					if err := s.Create(ctx, r.Key, session.Record{Data: data, ATime: t0, Created: t0, Owner: target}); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
		})
	}
}
