package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/memory"
)

// defaultStore is what the example uses without -store.
const defaultStore = "memory"

// opener opens one kind of store and describes where its sessions live.
type opener func(ctx context.Context, dir, dsn string) (store session.Store, describe string, close func(), err error)

var openers = map[string]opener{
	"memory": func(context.Context, string, string) (session.Store, string, func(), error) {
		return memory.New(), "memory store (lost when the process exits)", func() {}, nil
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

func openStore(ctx context.Context, name, dir, dsn string) (session.Store, string, func(), error) {
	open, ok := openers[name]
	if !ok {
		return nil, "", nil, fmt.Errorf("unknown store %q (want one of: %s)", name, storeNames())
	}
	return open(ctx, dir, dsn)
}
