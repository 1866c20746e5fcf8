package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	session "github.com/websession/websession/core"
	redisstore "github.com/websession/websession/drivers/redis"
)

// A counter whose sessions live in Redis, shared by every server that
// opens the same Redis with the same key prefix.
func Example() {
	url := os.Getenv("WEBSESSION_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	ctx := context.Background()
	store, err := redisstore.Open(ctx, url, redisstore.WithKeyPrefix(examplePrefix()))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

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
	// Leave nothing behind: the one session, its index entry.
	if _, err := store.Cleanup(ctx, time.Now().Add(time.Hour)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1
	// 2
	// 3
}

// examplePrefix keeps the example's keys apart from anything else on the
// server.
func examplePrefix() string {
	var b [4]byte
	rand.Read(b[:])
	return "example:" + hex.EncodeToString(b[:]) + ":"
}

// A Redis Cluster: build the application's ClusterClient and hand it to
// New, which never closes it. Redis's own expiry is a safety net behind
// the manager's cleanup: records expire an hour after the manager's idle
// timeout would end them.
func ExampleNew_cluster() {
	ctx := context.Background()
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
		ContextTimeoutEnabled: true, // a request's deadline bounds the store's calls
	})
	defer client.Close()
	store, err := redisstore.New(ctx, client,
		redisstore.WithKeyPrefix("shop:sessions:"),
		redisstore.WithExpiry(session.DefaultTimeout+time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	m, err := session.New(store)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	http.Handle("/", m.Middleware(http.NotFoundHandler()))
}
