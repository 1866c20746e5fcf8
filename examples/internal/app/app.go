// Package app is what the example programs share around their handlers:
// flags, exit codes, and serving until a signal, with a clean shutdown (so
// a disk store closes its watcher and a database pool its connections).
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ExitError is an error with its own exit status.
type ExitError struct {
	Err  error
	Code int
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Main runs run with the command line and a context that ends on SIGINT or
// SIGTERM, and exits as a command-line tool should: 0 after -h, the code
// of an ExitError (printing nothing more), 2 after any other error.
func Main(name string, run func(ctx context.Context, args []string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var exit *ExitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // -h: the usage was printed, as asked
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
}

// Parse parses args into fs and refuses arguments that are not flags.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	return nil
}

// Serve serves h on addr until ctx ends, then shuts down. Its first line
// of output says where it listens and where sessions live:
// "<name>: listening on http://<addr>, sessions in the <describe>".
func Serve(ctx context.Context, stdout io.Writer, name, addr string, h http.Handler, describe string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "%s: listening on http://%s, sessions in the %s\n", name, ln.Addr(), describe)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
