package memory_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/memory"
)

// The web.py counter on the memory store: sessions last as long as the
// process.
func Example() {
	store, err := memory.New()
	if err != nil {
		panic(err)
	}
	m, err := session.New(store)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	count := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := session.Update(session.FromContext(r.Context()), "count", func(n int) (int, error) { return n + 1, nil })
		if err != nil {
			http.Error(w, err.Error(), session.StatusCode(err))
			return
		}
		fmt.Fprintln(w, n)
	}))
	srv := httptest.NewServer(count)
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	for range 3 {
		resp, err := browser.Get(srv.URL)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(string(body))
	}
	fmt.Println(store.Len(), "session stored")
	// Output:
	// 1
	// 2
	// 3
	// 1 session stored
}
