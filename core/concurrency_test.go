package session

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// gate makes a handler stop after loading its session until the test lets
// it go on, so two requests overlap deterministically, without sleeps.
type gate struct {
	loaded  chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{loaded: make(chan struct{}), release: make(chan struct{})} }

// overlapMux: /slow?k=&v= loads the session, waits at the gate, then sets k=v;
// /set?k=&v= sets k=v at once; /get?k= returns k; /kill kills; /login regenerates.
func overlapMux(t *testing.T, g *gate) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		_, _ = Get[string](s, "anything") // load now
		close(g.loaded)
		<-g.release
		if k := r.URL.Query().Get("k"); k != "" {
			must(t, s.Set(k, r.URL.Query().Get("v")))
		}
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Set(r.URL.Query().Get("k"), r.URL.Query().Get("v")))
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, _ := Get[string](FromContext(r.Context()), r.URL.Query().Get("k"))
		io.WriteString(w, v)
	})
	mux.HandleFunc("/kill", func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Kill())
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Regenerate())
	})
	return mux
}

// overlap runs slowPath in the background until its session is loaded, then
// fastPath to completion, then lets the slow request finish.
func overlap(c *client, g *gate, slowPath, fastPath string) (slow, fast *http.Response) {
	done := make(chan *http.Response)
	go func() {
		resp, _ := c.do(slowPath)
		done <- resp
	}()
	<-g.loaded
	fast, _ = c.do(fastPath)
	close(g.release)
	return <-done, fast
}

func TestOverlappingRequestsKeepDifferentKeys(t *testing.T) {
	g := newGate()
	e := newEnv(t, overlapMux(t, g))
	c := e.client()
	c.body("/set?k=base&v=0")
	e.store.resetCounts()
	overlap(c, g, "/slow?k=a&v=1", "/set?k=b&v=2")
	for k, want := range map[string]string{"a": "1", "b": "2", "base": "0"} {
		if got := c.body("/get?k=" + k); got != want {
			t.Errorf("after overlapping requests %s = %q, want %q", k, got, want)
		}
	}
	if n := e.store.count("Update"); n != 3 { // fast, slow (conflict), slow (retry)
		t.Errorf("%d Updates, want 3: one per request plus one retry after the conflict", n)
	}
}

func TestOverlappingRequestsSameKeyLaterWins(t *testing.T) {
	g := newGate()
	e := newEnv(t, overlapMux(t, g))
	c := e.client()
	c.body("/set?k=x&v=0")
	overlap(c, g, "/slow?k=x&v=slow", "/set?k=x&v=fast")
	if got := c.body("/get?k=x"); got != "slow" {
		t.Fatalf("x = %q, want the value of the request that saved last (slow)", got)
	}
}

func TestKillIsNotUndoneByARequestInFlight(t *testing.T) {
	for _, slow := range []string{"/slow?k=a&v=1", "/slow"} { // a writer, and a reader that would touch
		g := newGate()
		e := newEnv(t, overlapMux(t, g), WithTouchInterval(0))
		c := e.client()
		c.body("/set?k=base&v=0")
		id := c.cookie(DefaultCookieName)
		slowResp, _ := overlap(c, g, slow, "/kill")
		if e.store.len() != 0 {
			t.Fatalf("%s: the killed session was brought back: %d records", slow, e.store.len())
		}
		if hasSetCookie(slowResp, DefaultCookieName) && cookieValueFrom(slowResp.Header, DefaultCookieName) == id {
			t.Fatalf("%s: the in-flight response re-sent the killed id", slow)
		}
		// A writer cannot save into a killed session: it must not be told
		// it did. A reader has nothing to save.
		want := 200
		if strings.Contains(slow, "k=") {
			want = http.StatusConflict
		}
		if slowResp.StatusCode != want {
			t.Fatalf("%s: in-flight request got %d, want %d", slow, slowResp.StatusCode, want)
		}
	}
}

func TestRegenerateIsNotUndoneByARequestInFlight(t *testing.T) {
	g := newGate()
	e := newEnv(t, overlapMux(t, g))
	c := e.client()
	c.body("/set?k=base&v=0")
	old := c.cookie(DefaultCookieName)
	overlap(c, g, "/slow?k=a&v=1", "/login")
	if _, ok := e.store.get(storeKey(old)); ok {
		t.Fatal("a request in flight re-created the record of the replaced id")
	}
	if got := c.body("/get?k=base"); got != "0" {
		t.Fatalf("regenerated session lost its data: %q", got)
	}
}

func TestConcurrentWritersOnOneSession(t *testing.T) {
	e := newEnv(t, overlapMux(t, newGate()))
	c := e.client()
	c.body("/set?k=init&v=0")
	const writers, rounds = 4, 20
	var wg sync.WaitGroup
	ok := make([]int, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= rounds; i++ {
				resp, _ := c.do(fmt.Sprintf("/set?k=w%d&v=%d", w, i))
				if resp.StatusCode == 200 {
					ok[w] = i
				}
			}
		}()
	}
	wg.Wait()
	for w := 0; w < writers; w++ {
		got := c.body(fmt.Sprintf("/get?k=w%d", w))
		if ok[w] == 0 {
			t.Errorf("writer %d: no request succeeded", w)
			continue
		}
		if got != strconv.Itoa(ok[w]) {
			t.Errorf("writer %d: stored %q, want its last saved value %d", w, got, ok[w])
		}
	}
	if !strings.Contains(c.body("/get?k=init"), "0") {
		t.Error("a key nobody changed was lost")
	}
}
