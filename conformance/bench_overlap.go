package conformance

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// benchOverlappingWriters measures one round of overlapWriters requests
// that overlap on one session, each setting its own key, through core's
// Middleware in-process: the worst case of the save algorithm, every save
// after the first racing the others. It reports the median and p99
// latency of a request and how many failed (errors/op, which must be 0),
// and checks after its loop that every key of the last round is stored.
func benchOverlappingWriters(b *testing.B, s *suite) {
	st := benchStore(b, s)
	clock := NewFakeClock()
	var failed atomic.Int64
	m, err := session.New(st,
		session.WithClock(clock.Now),
		session.WithCleanupInterval(0),
		session.WithLogger(slog.New(slog.DiscardHandler)),
		session.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
			failed.Add(1)
			w.WriteHeader(session.StatusCode(err))
		}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	round := 0
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Set(r.URL.Query().Get("k"), r.URL.Query().Get("v")); err != nil {
			http.Error(w, err.Error(), session.StatusCode(err))
			return
		}
		w.Write([]byte("ok"))
	}))
	first, _ := http.NewRequest(http.MethodGet, "http://example.test/set?k=base&v=0", nil)
	first.RemoteAddr = "192.0.2.1:1234"
	w0 := &benchWriter{h: make(http.Header)}
	h.ServeHTTP(w0, first)
	c, err := http.ParseSetCookie(w0.h.Get("Set-Cookie"))
	if w0.status != http.StatusOK || err != nil {
		b.Fatalf("first request: status %d, cookie %v", w0.status, err)
	}
	reqs := make([]*http.Request, overlapWriters)
	writers := make([]*benchWriter, overlapWriters)
	for i := range reqs {
		writers[i] = &benchWriter{h: make(http.Header)}
	}
	before, err := st.Load(context.Background(), storeKey(c.Value))
	if err != nil {
		b.Fatalf("loading the session: %v", err)
	}
	lat := make([]time.Duration, 0, b.N*overlapWriters)
	var mu sync.Mutex
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		round++
		b.StopTimer()
		for i := range reqs {
			reqs[i] = first.Clone(context.Background())
			reqs[i].URL.RawQuery = fmt.Sprintf("k=w%d&v=%d", i, round)
			reqs[i].Header.Set("Cookie", c.Name+"="+c.Value)
			writers[i].reset()
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				t0 := time.Now()
				h.ServeHTTP(writers[i], reqs[i])
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}()
		}
		b.StartTimer()
		close(start)
		wg.Wait()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns/req")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns/req")
	b.ReportMetric(float64(failed.Load())/float64(b.N), "errors/op")
	rec, err := st.Load(context.Background(), storeKey(c.Value))
	if err != nil {
		b.Fatalf("loading the session after %d rounds: %v", b.N, err)
	}
	if rec.Version < before.Version+uint64(b.N) {
		b.Fatalf("after %d rounds of writes the record is at Version %d, from %d: at least one write a round must bump it", b.N, rec.Version, before.Version)
	}
	for i := range overlapWriters {
		if want := fmt.Sprintf(`"w%d":"%d"`, i, round); !bytes.Contains(rec.Data, []byte(want)) && failed.Load() == 0 {
			b.Fatalf("after %d rounds without errors, key w%d is not %q: lost (data %s)", b.N, i, want, rec.Data)
		}
	}
}
