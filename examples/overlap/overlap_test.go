package main

import (
	"context"
	"testing"

	"github.com/websession/websession/examples/internal/proctest"
)

// These tests run the servers as separate processes over one store, as two
// application servers behind a load balancer, and load them with one
// browser's overlapping requests: nothing may be lost or refused.

func loadAndCheck(t *testing.T, bases ...string) {
	t.Helper()
	rep, err := runLoad(context.Background(), bases, 50)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep)
	if rep.lost() {
		t.Fatalf("overlapping requests lost or refused changes:\n%s", rep)
	}
}

func start(t *testing.T, args ...string) *proctest.Process {
	t.Helper()
	return proctest.Start(t, proctest.Build(t, "."), t.TempDir(), append([]string{"-addr", "127.0.0.1:0"}, args...)...)
}

func TestOneProcessMemory(t *testing.T) {
	loadAndCheck(t, start(t, "-store", "memory").Base)
}

func TestTwoProcessesDisk(t *testing.T) {
	dir := t.TempDir()
	a, b := start(t, "-store", "disk", "-dir", dir), start(t, "-store", "disk", "-dir", dir)
	loadAndCheck(t, a.Base, b.Base)
}

func testTwoProcessesSQL(t *testing.T, db proctest.Database) {
	dsn, table := db.Prepare(t)
	args := []string{"-store", db.Name, "-dsn", dsn, "-table", table}
	a := start(t, args...) // creates the table before the second starts
	b := start(t, args...)
	loadAndCheck(t, a.Base, b.Base)
}

func TestTwoProcessesPostgres(t *testing.T) { testTwoProcessesSQL(t, proctest.Postgres) }

func TestTwoProcessesMySQL(t *testing.T) { testTwoProcessesSQL(t, proctest.MySQL) }

func TestTwoProcessesRedis(t *testing.T) {
	args := []string{"-store", "redis", "-dsn", proctest.RedisDSN(t)}
	a, b := start(t, args...), start(t, args...)
	loadAndCheck(t, a.Base, b.Base)
}
