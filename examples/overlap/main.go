// Command overlap shows what overlapping requests on one session get, on
// any store and across processes: start one or more servers over the same
// store, then point the load generator at them.
//
//	go run ./examples/overlap -addr 127.0.0.1:8081 -dir /tmp/s &
//	go run ./examples/overlap -addr 127.0.0.1:8082 -dir /tmp/s &
//	go run ./examples/overlap -load http://127.0.0.1:8081,http://127.0.0.1:8082
//
// The servers answer /set?k=&v= (a blind write), /incr (an atomic
// increment with session.Update, answering the stored count), /count (Get
// then Set: read-then-write) and /get?k=. The load generator starts one
// session, then sends -n requests at once, spread over the servers, each
// setting its own key, then -n increments at once, and reports how many
// failed, how many keys and increments were lost (none, or it exits 1),
// and the latency of the writers (median and p99).
//
// The store flags are those of the counter example (-store, -dir, -dsn,
// -table).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/websession/websession/examples/internal/app"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/examples/internal/stores"
)

func main() { app.Main("overlap", run) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("overlap", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "address to listen on")
	load := fs.String("load", "", "comma-separated base URLs of servers to load, instead of serving")
	n := fs.Int("n", 50, "overlapping requests per round of -load")
	storeFlags := stores.Register(fs)
	if err := app.Parse(fs, args); err != nil {
		return err
	}
	if *load != "" {
		rep, err := runLoad(ctx, strings.Split(*load, ","), *n)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, rep)
		if rep.lost() {
			return &app.ExitError{Err: errLost, Code: 1}
		}
		return nil
	}
	store, describe, closeStore, err := storeFlags.Open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	m, err := session.New(store)
	if err != nil {
		return err
	}
	defer m.Close()
	return app.Serve(ctx, stdout, "overlap", *addr, m.Middleware(newMux()), describe)
}

var errLost = errors.New("changes were lost or refused")

func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, err error) {
		code := session.StatusCode(err)
		http.Error(w, err.Error(), code)
	}
	mux.HandleFunc("GET /set", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Set(r.FormValue("k"), r.FormValue("v")); err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /incr", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.Update(session.FromContext(r.Context()), "count", func(n int) (int, error) { return n + 1, nil })
		if err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintln(w, n)
	})
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, err := session.Get[int](s, "count")
		if err != nil && !errors.Is(err, session.ErrNoValue) {
			fail(w, err)
			return
		}
		if err := s.Set("count", n+1); err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintln(w, n+1)
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		v, err := session.Get[any](session.FromContext(r.Context()), r.FormValue("k"))
		if err != nil && !errors.Is(err, session.ErrNoValue) {
			fail(w, err)
			return
		}
		if v == nil {
			v = ""
		}
		fmt.Fprintln(w, v)
	})
	return mux
}

// parseCount reads a response body that is one number.
func parseCount(body string) (int, error) { return strconv.Atoi(strings.TrimSpace(body)) }
