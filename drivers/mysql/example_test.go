package mysql_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/mysql"
)

// A counter whose sessions live in MySQL or MariaDB, shared by every
// server that opens the same database.
func Example() {
	dsn := os.Getenv("WEBSESSION_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/test"
	}
	ctx := context.Background()
	store, err := mysql.Open(ctx, dsn, mysql.WithTable("example_sessions"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	defer store.DB().Exec("DROP TABLE example_sessions") // leave nothing behind

	m, err := session.New(store)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	srv := httptest.NewServer(m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _ := session.Get[int](s, "count")
		if err := s.Set("count", n+1); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n+1)
	})))
	defer srv.Close()

	var cookies []*http.Cookie
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if c := resp.Cookies(); len(c) > 0 {
			cookies = c
		}
		fmt.Println(string(body))
	}
	// Output:
	// 1
	// 2
	// 3
}
