package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/disk"
	"github.com/websession/websession/drivers/memory"
	"github.com/websession/websession/drivers/mysql"
	"github.com/websession/websession/drivers/postgres"
)

// defaultStore is what the example uses without -store: files in -dir
// (./sessions), as web.py's example uses DiskStore('sessions').
const defaultStore = "disk"

// storeFlags are the command-line settings the stores read.
type storeFlags struct {
	dir, dsn, table string
}

// opener opens one kind of store and describes where its sessions live.
type opener func(ctx context.Context, f storeFlags) (store session.Store, describe string, close func(), err error)

var openers = map[string]opener{
	"memory": func(context.Context, storeFlags) (session.Store, string, func(), error) {
		return memory.New(), "memory store (lost when the process exits)", func() {}, nil
	},
	"disk": func(_ context.Context, f storeFlags) (session.Store, string, func(), error) {
		s, err := disk.New(f.dir)
		if err != nil {
			return nil, "", nil, err
		}
		return s, fmt.Sprintf("disk store in %s", f.dir), func() { s.Close() }, nil
	},
	"postgres": func(ctx context.Context, f storeFlags) (session.Store, string, func(), error) {
		if f.dsn == "" {
			return nil, "", nil, errors.New("-store postgres needs -dsn, e.g. postgres://root@127.0.0.1:5432/test?sslmode=disable")
		}
		s, err := postgres.Open(ctx, f.dsn, postgres.WithTable(f.table))
		if err != nil {
			return nil, "", nil, err
		}
		if err := s.CreateTable(ctx); err != nil {
			s.Close()
			return nil, "", nil, err
		}
		return s, fmt.Sprintf("postgres store, table %s", s.Table()), func() { s.Close() }, nil
	},
	"mysql": func(ctx context.Context, f storeFlags) (session.Store, string, func(), error) {
		if f.dsn == "" {
			return nil, "", nil, errors.New("-store mysql needs -dsn, e.g. root@tcp(127.0.0.1:3306)/test")
		}
		s, err := mysql.Open(ctx, f.dsn, mysql.WithTable(f.table))
		if err != nil {
			return nil, "", nil, err
		}
		if err := s.CreateTable(ctx); err != nil {
			s.Close()
			return nil, "", nil, err
		}
		return s, fmt.Sprintf("mysql store, table %s", s.Table()), func() { s.Close() }, nil
	},
}

func storeNames() string {
	var names []string
	for n := range openers {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func openStore(ctx context.Context, name string, f storeFlags) (session.Store, string, func(), error) {
	open, ok := openers[name]
	if !ok {
		return nil, "", nil, fmt.Errorf("unknown store %q (want one of: %s)", name, storeNames())
	}
	return open(ctx, f)
}
