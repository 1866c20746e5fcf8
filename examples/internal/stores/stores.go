// Package stores opens the session store an example program runs on, as
// chosen by its command-line flags: -store, and the flags of that store.
package stores

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	redisstore "github.com/websession/websession/drivers/redis"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/disk"
	"github.com/websession/websession/drivers/memory"
	"github.com/websession/websession/drivers/mysql"
	"github.com/websession/websession/drivers/postgres"
)

// Default is the store used without -store: files in -dir (./sessions), as
// web.py's example uses DiskStore('sessions').
const Default = "disk"

// Flags are the store flags of a program, registered by Register.
type Flags struct {
	fs                    *flag.FlagSet
	name, dir, dsn, table *string
	redisCache            *int
}

// kind is one store: which flags it reads, and how it opens.
type kind struct {
	flags []string
	open  func(ctx context.Context, f *Flags) (session.Store, string, func(), error)
}

var kinds = map[string]kind{
	"memory": {open: func(context.Context, *Flags) (session.Store, string, func(), error) {
		s, err := memory.New()
		return s, "memory store (lost when the process exits)", func() {}, err
	}},
	"disk": {flags: []string{"dir"}, open: func(_ context.Context, f *Flags) (session.Store, string, func(), error) {
		s, err := disk.New(*f.dir)
		if err != nil {
			return nil, "", nil, err
		}
		return s, "disk store in " + *f.dir, func() { s.Close() }, nil
	}},
	"postgres": {flags: []string{"dsn", "table"}, open: func(ctx context.Context, f *Flags) (session.Store, string, func(), error) {
		if *f.dsn == "" {
			return nil, "", nil, errors.New("-store postgres needs -dsn, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
		}
		s, err := postgres.Open(ctx, *f.dsn, postgres.WithTable(*f.table))
		if err != nil {
			return nil, "", nil, err
		}
		if err := s.CreateTable(ctx); err != nil {
			s.Close()
			return nil, "", nil, err
		}
		return s, "postgres store, table " + s.Table(), func() { s.Close() }, nil
	}},
	"mysql": {flags: []string{"dsn", "table"}, open: func(ctx context.Context, f *Flags) (session.Store, string, func(), error) {
		if *f.dsn == "" {
			return nil, "", nil, errors.New("-store mysql needs -dsn, e.g. root@tcp(127.0.0.1:3306)/test")
		}
		s, err := mysql.Open(ctx, *f.dsn, mysql.WithTable(*f.table))
		if err != nil {
			return nil, "", nil, err
		}
		if err := s.CreateTable(ctx); err != nil {
			s.Close()
			return nil, "", nil, err
		}
		return s, "mysql store, table " + s.Table(), func() { s.Close() }, nil
	}},
	"redis": {flags: []string{"dsn", "redis-cache"}, open: func(ctx context.Context, f *Flags) (session.Store, string, func(), error) {
		if *f.dsn == "" {
			return nil, "", nil, errors.New("-store redis needs -dsn, e.g. redis://127.0.0.1:6379/0")
		}
		var opts []redisstore.Option
		what := ""
		if *f.redisCache > 0 {
			opts = append(opts, redisstore.WithClientCache(*f.redisCache<<20))
			what = fmt.Sprintf(", client cache of %d MiB", *f.redisCache)
		}
		s, err := redisstore.Open(ctx, *f.dsn, opts...)
		if err != nil {
			return nil, "", nil, err
		}
		return s, "redis store at " + *f.dsn + ", keys " + s.KeyPrefix() + "*" + what, func() { s.Close() }, nil
	}},
}

// Names lists the stores, sorted.
func Names() []string {
	var names []string
	for n := range kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Register defines -store and the flags of every store on fs.
func Register(fs *flag.FlagSet) *Flags {
	return &Flags{
		fs:         fs,
		name:       fs.String("store", Default, "session store: "+strings.Join(Names(), ", ")),
		dir:        fs.String("dir", "./sessions", "directory of the disk store"),
		dsn:        fs.String("dsn", "", "data source name of the postgres, mysql or redis store (redis://host:port/db)"),
		table:      fs.String("table", "sessions", "table of the postgres or mysql store (created if missing)"),
		redisCache: fs.Int("redis-cache", 0, "MiB of client cache for the redis store (0: none)"),
	}
}

// Open opens the store the flags name, after fs was parsed. A flag given
// for another store than the one chosen is an error, not silently ignored.
// It returns the store, a description of where its sessions live, and the
// function that closes it.
func (f *Flags) Open(ctx context.Context) (session.Store, string, func(), error) {
	k, ok := kinds[*f.name]
	if !ok {
		return nil, "", nil, fmt.Errorf("unknown store %q (want one of: %s)", *f.name, strings.Join(Names(), ", "))
	}
	var stray []string
	f.fs.Visit(func(fl *flag.Flag) {
		if slices.Contains([]string{"dir", "dsn", "table", "redis-cache"}, fl.Name) && !slices.Contains(k.flags, fl.Name) {
			stray = append(stray, "-"+fl.Name)
		}
	})
	if len(stray) > 0 {
		return nil, "", nil, fmt.Errorf("%s does not apply to -store %s", strings.Join(stray, ", "), *f.name)
	}
	return k.open(ctx, f)
}
