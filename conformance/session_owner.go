package conformance

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"

	session "github.com/websession/websession/core"
)

// checkOwnerEndInFlight: one device of a user signs the others out while a
// request of one of them is in flight. The ended session must stay ended:
// the request in flight is refused (409), its record never comes back, its
// next request is signed out, and the listing shows only the device that
// remains. It needs the store's OwnerIndex, through core's manager.
func checkOwnerEndInFlight(f *fixture) {
	e := sessFixture(f)
	if _, ok := e.raw.(session.OwnerIndex); !ok {
		f.t.Skip(noOwnerIndex)
	}
	hold := newBarrier(1)
	hold.then = make(chan struct{})
	defer func() {
		select {
		case <-hold.then:
		default:
			close(hold.then)
		}
	}()
	mux := e.overlapMux(hold).(*http.ServeMux)
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		err := s.Regenerate()
		if err == nil {
			err = s.SetOwner(r.URL.Query().Get("user"))
		}
		if err == nil {
			err = s.SetLabel("device", r.URL.Query().Get("device"))
		}
		if err != nil {
			http.Error(w, err.Error(), session.StatusCode(err))
		}
	})
	mux.HandleFunc("/devices", func(w http.ResponseWriter, r *http.Request) {
		owner, err := session.FromContext(r.Context()).Owner()
		var infos []session.SessionInfo
		if err == nil {
			infos, err = e.m.Sessions(r.Context(), owner)
		}
		if err != nil {
			http.Error(w, err.Error(), session.StatusCode(err))
			return
		}
		var names []string
		for _, in := range infos {
			names = append(names, fmt.Sprintf("%s:%v", in.Labels["device"], in.Current))
		}
		slices.Sort(names) // LoadOwned's order is unspecified, and the clock stands still
		io.WriteString(w, strings.Join(names, " "))
	})
	mux.HandleFunc("/others", func(w http.ResponseWriter, r *http.Request) {
		owner, err := session.FromContext(r.Context()).Owner()
		n := 0
		if err == nil {
			n, err = e.m.EndSessions(r.Context(), owner, true)
		}
		if err != nil {
			http.Error(w, err.Error(), session.StatusCode(err))
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		owner, err := session.FromContext(r.Context()).Owner()
		if err != nil {
			http.Error(w, err.Error(), session.StatusCode(err))
			return
		}
		io.WriteString(w, owner)
	})
	srv := httptest.NewServer(e.m.Middleware(mux))
	defer srv.Close()
	base := srv.URL

	laptop, phone := e.client(), e.client()
	laptop.on(base, "/login?user=ann&device=laptop")
	phone.on(base, "/login?user=ann&device=phone")
	phoneID := phone.cookie()
	e.expectBody(laptop.on(base, "/devices"), "laptop:true phone:false", "ann's devices, listed from the laptop (Manager.Sessions over LoadOwned)")

	// A request of the phone loads its session and waits.
	inflight := make(chan reply, 1)
	go func() {
		inflight <- phone.fanOut(1, []string{base}, func(int) string { return "/set?hold&k=cart&v=book" })[0]
	}()
	if err := hold.arrivedAll(e.requestTimeout()); err != nil {
		e.fatalf("%v", err)
	}
	mark := e.spy.mark()
	e.expectBody(laptop.on(base, "/others"), "1", "signing every other device out from the laptop (Manager.EndSessions)")
	close(hold.then)
	r := <-inflight
	e.checkCalls()
	if r.status != http.StatusConflict {
		e.errorf("the phone's request in flight when it was signed out: status %d body %q, want 409: its change could not be saved", r.status, r.body)
	}
	if calls := e.spy.since(mark); count(calls, "Create") > 0 {
		e.errorf("a record was created after the phone was signed out: %s", describe(calls))
	}
	e.expectGone(phoneID, "the signed-out phone's session, after its request in flight finished")
	e.expectBody(phone.on(base, "/whoami"), "", "the phone's next request (signed out: no owner)")
	e.expectBody(laptop.on(base, "/devices"), "laptop:true", "ann's devices after the phone was signed out")
}
