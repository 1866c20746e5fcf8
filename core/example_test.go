package session_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"

	session "github.com/websession/websession/core"
)

// The web.py counter: /count increments the session's count, /reset kills
// the session.
func Example() {
	store := newExampleStore() // any session.Store: memory.New(), disk.New(dir), ...
	m, err := session.New(store, session.WithInitializer(map[string]any{"count": 0}))
	if err != nil {
		panic(err)
	}
	defer m.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		// Update: overlapping requests never lose an increment, and n is
		// the count actually stored.
		n, err := session.Update(session.FromContext(r.Context()), "count", func(n int) (int, error) { return n + 1, nil })
		if err != nil {
			http.Error(w, "session error", session.StatusCode(err))
			return
		}
		io.WriteString(w, strconv.Itoa(n))
	})
	mux.HandleFunc("GET /reset", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Kill()
	})
	srv := httptest.NewServer(m.Middleware(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	for _, path := range []string{"/count", "/count", "/count", "/reset", "/count"} {
		resp, err := browser.Get(srv.URL + path)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s %q\n", path, body)
	}
	// Output:
	// /count "1"
	// /count "2"
	// /count "3"
	// /reset ""
	// /count "1"
}

// Regenerate at login, so that an id planted before cannot ride into the
// authenticated session.
func ExampleSession_Regenerate() {
	login := func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		// ... check the credentials ...
		if err := s.Regenerate(); err != nil {
			http.Error(w, "session error", http.StatusInternalServerError)
			return
		}
		s.Set("user", "ann")
	}
	_ = login
}

// Get decodes a stored value into the type asked for. Get followed by Set
// saves only if no other request changed the cart in between; otherwise
// the request fails with 409 Conflict rather than overwrite that change.
// (Update would re-run the append on the fresh cart instead.)
func ExampleGet() {
	type cart struct {
		Items []string `json:"items"`
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		c, err := session.Get[cart](s, "cart")
		if err != nil { // session.ErrNoValue the first time
			c = cart{}
		}
		c.Items = append(c.Items, r.FormValue("item"))
		s.Set("cart", c)
	}
	_ = handler
}
