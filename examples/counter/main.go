// Command counter is web.py's session example in Go: /count increments the
// session's count and returns it, /reset kills the session.
//
//	go run ./examples/counter
//	curl -c jar -b jar localhost:8080/count   # 1, then 2, 3, ...
//	curl -c jar -b jar localhost:8080/reset
//
// Flags choose the store: -store disk (the default: one file per session in
// -dir, ./sessions), memory (this process only), postgres or mysql (with
// -dsn and -table, the table created if missing). A flag that does not
// apply to the chosen store, or any argument, is an error (exit status 2);
// -h prints the flags and exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/websession/websession/examples/internal/app"

	"github.com/websession/websession/examples/internal/stores"

	session "github.com/websession/websession/core"
)

func main() { app.Main("counter", run) }

// run parses args, serves until ctx ends, and shuts down cleanly (so a disk
// store closes its watcher and a database pool its connections).
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("counter", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "address to listen on")
	storeFlags := stores.Register(fs)
	if err := app.Parse(fs, args); err != nil {
		return err
	}
	store, describe, closeStore, err := storeFlags.Open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()

	m, err := session.New(store, session.WithInitializer(map[string]any{"count": 0}))
	if err != nil {
		return err
	}
	defer m.Close()

	return app.Serve(ctx, stdout, "counter", *addr, m.Middleware(newMux()), describe)
}

// newMux is the application: web.py's count and reset.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		// Update re-runs the increment on the stored count until it lands,
		// so overlapping requests never lose one, and returns the count
		// actually stored, which is what the response shows.
		n, err := session.Update(session.FromContext(r.Context()), "count", func(n int) (int, error) { return n + 1, nil })
		if err != nil {
			// The error handler of the manager has not seen this one.
			slog.ErrorContext(r.Context(), "count", "err", err)
			code := session.StatusCode(err)
			http.Error(w, http.StatusText(code), code)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, n)
	})
	mux.HandleFunc("GET /reset", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Kill(); err != nil {
			slog.ErrorContext(r.Context(), "reset", "err", err)
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		}
	})
	return mux
}
