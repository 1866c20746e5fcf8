package conformance

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// benchmarks are the sub-benchmarks of RunBenchmarks, in order.
var benchmarks = []struct {
	name string
	run  func(b *testing.B, s *suite)
}{
	{"Load", benchLoad},
	{"Update", benchUpdate},
	{"Touch", benchTouch},
	{"Create", benchCreate},
	{"CounterRequest", benchCounterRequest},
	{"OverlappingWriters", benchOverlappingWriters},
}

// RunBenchmarks measures the store that h describes, as sub-benchmarks of
// b: Load, Update, Touch and Create of one session-sized record, and
// CounterRequest, one request of the web.py counter (load, increment,
// save) through core's Middleware, and OverlappingWriters, 50 requests
// overlapping on one session, each setting its own key (reporting the
// median and p99 request latency and errors/op), driven in-process so that the figure is
// the library's and the store's cost, not the network's. Each reports
// allocations, and checks after its loop that the work was really done
// (the final Version, ATime or count), so a store cannot look fast by
// skipping it.
//
// Call it from a Benchmark function with the same Harness as Run:
//
//	func BenchmarkConformance(b *testing.B) { conformance.RunBenchmarks(b, harness) }
func RunBenchmarks(b *testing.B, h Harness) {
	b.Helper()
	s, err := newSuite(h)
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			if reason, ok := s.h.Skip[bm.name]; ok {
				b.Skipf("skipped by Harness.Skip[%q]: %s", bm.name, reason)
			}
			// The calls run on this goroutine, unguarded, so that the
			// figures are the store's; a panic still fails only this
			// sub-benchmark.
			defer func() {
				if p := recover(); p != nil {
					b.Fatalf("conformance: the store panicked during %s: %v\n%s", bm.name, p, debug.Stack())
				}
			}()
			bm.run(b, s)
		})
	}
}

// benchData is a session-sized record: what the counter example stores,
// padded like a session holding a user name and a few flags.
var benchData = []byte(`{"v":1,"ip":"192.0.2.1","data":{"count":1,"csrf":"lHq3vV7pJ6mA0sD2fG4hJ8kL","flash":"","theme":"dark","user":"ann@example.com"}}`)

func benchStore(b *testing.B, s *suite) session.Store {
	b.Helper()
	ns := s.namespace(b)
	st := s.h.NewStore(b, ns)
	if st == nil {
		b.Fatalf("Harness.NewStore(%q) returned a nil store", ns)
	}
	return st
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return ctx
}

func benchKey(i int) string {
	return storeKey("bench " + strconv.Itoa(i))
}

func benchLoad(b *testing.B, s *suite) {
	st, ctx := benchStore(b, s), benchCtx(b)
	k := benchKey(0)
	if err := st.Create(ctx, k, session.Record{Data: benchData, ATime: Epoch, Created: Epoch}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var rec session.Record
	var err error
	for range b.N {
		rec, err = st.Load(ctx, k)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if !bytes.Equal(rec.Data, benchData) || rec.Version != 1 {
		b.Fatalf("Load returned %d bytes at Version %d, want the %d bytes stored at Version 1", len(rec.Data), rec.Version, len(benchData))
	}
}

func benchUpdate(b *testing.B, s *suite) {
	st, ctx := benchStore(b, s), benchCtx(b)
	k := benchKey(0)
	if err := st.Create(ctx, k, session.Record{Data: benchData, ATime: Epoch, Created: Epoch}); err != nil {
		b.Fatal(err)
	}
	data := bytes.Clone(benchData)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		data[len(data)-5] = byte('a' + i%26)
		if err := st.Update(ctx, k, session.Record{Data: data, ATime: Epoch.Add(time.Duration(i+1) * time.Second), Version: uint64(i + 1)}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	rec, err := st.Load(ctx, k)
	if err != nil {
		b.Fatal(err)
	}
	if rec.Version != uint64(b.N+1) || !bytes.Equal(rec.Data, data) {
		b.Fatalf("after %d Updates: Version %d, want %d, data equal: %v", b.N, rec.Version, b.N+1, bytes.Equal(rec.Data, data))
	}
}

func benchTouch(b *testing.B, s *suite) {
	st, ctx := benchStore(b, s), benchCtx(b)
	k := benchKey(0)
	if err := st.Create(ctx, k, session.Record{Data: benchData, ATime: Epoch, Created: Epoch}); err != nil {
		b.Fatal(err)
	}
	base := s.align(Epoch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := st.Touch(ctx, k, base.Add(time.Duration(i+1)*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	rec, err := st.Load(ctx, k)
	if err != nil {
		b.Fatal(err)
	}
	last := base.Add(time.Duration(b.N) * time.Second)
	if p := s.timeProblem(rec.ATime, last); p != "" || rec.Version != 1 {
		b.Fatalf("after %d Touches: ATime %s, Version %d; want the last ATime given at Version 1", b.N, p, rec.Version)
	}
}

// benchCreate creates records in batches, deleting each batch off the
// clock so that the store does not grow with b.N.
func benchCreate(b *testing.B, s *suite) {
	st, ctx := benchStore(b, s), benchCtx(b)
	const batch = 4096
	keys := make([]string, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		for _, k := range keys {
			if err := st.Delete(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		keys = keys[:0]
		for i := done; i < min(done+batch, b.N); i++ {
			keys = append(keys, benchKey(i))
		}
		b.StartTimer()
		for _, k := range keys {
			if err := st.Create(ctx, k, session.Record{Data: benchData, ATime: Epoch, Created: Epoch}); err != nil {
				b.Fatal(err)
			}
		}
		done += len(keys)
	}
	b.StopTimer()
	for _, k := range keys {
		rec, err := st.Load(ctx, k)
		if err != nil || rec.Version != 1 || !bytes.Equal(rec.Data, benchData) {
			b.Fatalf("a record just created: Load = Version %d, %d bytes, %v; want Version 1, %d bytes", rec.Version, len(rec.Data), err, len(benchData))
		}
	}
}

// benchWriter is a reusable http.ResponseWriter: unlike
// httptest.NewRecorder per request, it costs no allocation, so the figure
// is the middleware's and the store's.
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
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

func (w *benchWriter) reset() {
	clear(w.h)
	w.status = 0
	w.body = w.body[:0]
}

func benchCounterRequest(b *testing.B, s *suite) {
	st := benchStore(b, s)
	clock := NewFakeClock()
	m, err := session.New(st,
		session.WithClock(clock.Now),
		session.WithCleanupInterval(0),
		session.WithLogger(slog.New(slog.DiscardHandler)),
		session.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
			b.Errorf("session error: %v", err)
			w.WriteHeader(http.StatusInternalServerError)
		}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	var num []byte
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := session.FromContext(r.Context())
		n, err := session.Get[int](sess, "count")
		if err != nil && !errors.Is(err, session.ErrNoValue) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := sess.Set("count", n+1); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		num = strconv.AppendInt(num[:0], int64(n+1), 10)
		w.Write(num)
	}))
	w := &benchWriter{h: make(http.Header)}
	first, err := http.NewRequest(http.MethodGet, "http://example.test/count", nil)
	if err != nil {
		b.Fatal(err)
	}
	first.RemoteAddr = "192.0.2.1:1234"
	h.ServeHTTP(w, first)
	c, err := http.ParseSetCookie(w.h.Get("Set-Cookie"))
	if w.status != http.StatusOK || string(w.body) != "1" || err != nil {
		b.Fatalf("first counter request: status %d, body %q, cookie %v", w.status, w.body, err)
	}
	req := first.Clone(context.Background())
	req.Header.Set("Cookie", c.Name+"="+c.Value)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.reset()
		h.ServeHTTP(w, req)
	}
	b.StopTimer()
	if want := strconv.Itoa(b.N + 1); w.status != http.StatusOK || string(w.body) != want {
		b.Fatalf("after %d counter requests: status %d, body %q, want %q", b.N, w.status, w.body, want)
	}
	rec, err := st.Load(context.Background(), storeKey(c.Value))
	if err != nil || rec.Version != uint64(b.N+1) {
		b.Fatalf("after %d counter requests the record is at Version %d (%v), want %d", b.N, rec.Version, err, b.N+1)
	}
}
