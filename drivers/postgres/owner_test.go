package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// ownedKeys returns the sorted keys LoadOwned lists for owner, after
// checking that each record is the one Load returns.
func ownedKeys(t *testing.T, s *Store, owner string) []string {
	t.Helper()
	recs, err := s.LoadOwned(ctxT(t), owner)
	if err != nil {
		t.Fatalf("LoadOwned(%q): %v", owner, err)
	}
	keys := []string{}
	for _, r := range recs {
		got := mustLoad(t, s, r.Key)
		if !bytes.Equal(got.Data, r.Record.Data) || !got.ATime.Equal(r.Record.ATime) || !got.Created.Equal(r.Record.Created) ||
			got.Version != r.Record.Version || got.Owner != r.Record.Owner || r.Record.Owner != owner {
			t.Errorf("LoadOwned(%q) gave %s as %+v, Load gives %+v", owner, r.Key, r.Record, got)
		}
		keys = append(keys, r.Key)
	}
	slices.Sort(keys)
	return keys
}

func TestOwners(t *testing.T) {
	s := newStore(t, openDB(t, testDSN(t)), WithSchema(newSchema(t)))
	ctx := ctxT(t)
	for i, owner := range []string{"alice", "alice", "alice", "bob", "", "a_ice"} {
		r := rec(fmt.Sprint("data", i), t0)
		r.Owner = owner
		mustCreate(t, s, fmt.Sprint("k", i), r)
	}
	if got := mustLoad(t, s, "k0"); got.Owner != "alice" {
		t.Fatalf("Load after Create with an owner: Owner = %q", got.Owner)
	}
	if got := mustLoad(t, s, "k4"); got.Owner != "" {
		t.Fatalf("Load of a session without owner: Owner = %q", got.Owner)
	}
	// "_" is no wildcard, case counts.
	if got := ownedKeys(t, s, "alice"); !slices.Equal(got, []string{"k0", "k1", "k2"}) {
		t.Fatalf("alice owns %v", got)
	}
	if got := ownedKeys(t, s, "Alice"); len(got) != 0 {
		t.Fatalf("Alice owns %v", got)
	}
	if got := ownedKeys(t, s, "nobody"); len(got) != 0 {
		t.Fatalf("nobody owns %v", got)
	}

	// Update replaces the owner with the data; Touch keeps it.
	if err := s.Update(ctx, "k1", session.Record{Data: []byte("moved"), ATime: t0, Version: 1, Owner: "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "k2", session.Record{Data: []byte("anonymous"), ATime: t0, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, "k0", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := ownedKeys(t, s, "alice"); !slices.Equal(got, []string{"k0"}) {
		t.Fatalf("after the updates alice owns %v", got)
	}
	if got := ownedKeys(t, s, "bob"); !slices.Equal(got, []string{"k1", "k3"}) {
		t.Fatalf("after the updates bob owns %v", got)
	}
	// A stale Update changes no owner either.
	if err := s.Update(ctx, "k3", session.Record{Data: []byte("x"), ATime: t0, Version: 7, Owner: "alice"}); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("stale Update: %v", err)
	}

	// Delete and Cleanup take the rows out of the index with them.
	if err := s.Delete(ctx, "k3"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Cleanup(ctx, t0.Add(time.Second)); err != nil || n != 4 { // all but k0
		t.Fatalf("Cleanup = %d, %v", n, err)
	}
	if got := ownedKeys(t, s, "bob"); len(got) != 0 {
		t.Fatalf("bob owns %v after Delete and Cleanup", got)
	}
	if got := ownedKeys(t, s, "alice"); !slices.Equal(got, []string{"k0"}) {
		t.Fatalf("alice owns %v after the Cleanup", got)
	}

	// Owner keys are validated like store keys, before any query.
	for _, bad := range []string{"", "a b", "a'b", strings.Repeat("o", session.MaxKeyLen+1)} {
		if _, err := s.LoadOwned(ctx, bad); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("LoadOwned(%q) = %v, want ErrInvalidKey", bad, err)
		}
		if bad == "" {
			continue
		}
		r := rec("x", t0)
		r.Owner = bad
		if err := s.Create(ctx, "new", r); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Create with owner %q = %v, want ErrInvalidKey", bad, err)
		}
		r.Version = 1
		if err := s.Update(ctx, "k0", r); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Update with owner %q = %v, want ErrInvalidKey", bad, err)
		}
	}
}

// TestLoadOwnedUsesTheIndex checks the plan PostgreSQL uses for LoadOwned's
// prepared statement once it switches to a generic plan (forced here):
// the partial index on owner, never a scan of the table.
func TestLoadOwnedUsesTheIndex(t *testing.T) {
	s := newStore(t, openDB(t, testDSN(t)), WithSchema(newSchema(t)))
	ctx := ctxT(t)
	a := admin(t)
	a.MustExecContext(ctx, `INSERT INTO `+s.Table()+` (session_id, data, atime, created, version, owner)
SELECT 'k' || g, '', $1, $1, 1, CASE WHEN g % 3 = 0 THEN '' ELSE 'o' || (g % 1000) END FROM generate_series(1, 20000) g`, t0)
	a.MustExecContext(ctx, `ANALYZE `+s.Table())
	tx := a.MustBeginTx(ctx, nil)
	defer func() { _ = tx.Rollback() }()
	tx.MustExecContext(ctx, `SET LOCAL plan_cache_mode = force_generic_plan`)
	tx.MustExecContext(ctx, `PREPARE ws_owned(text) AS `+loadOwnedQuery(s.Table()))
	defer tx.MustExecContext(ctx, `DEALLOCATE ws_owned`)
	var plan []string
	if err := tx.SelectContext(ctx, &plan, `EXPLAIN EXECUTE ws_owned('o7')`); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), s.table+ownerIndexSuffix) || strings.Contains(strings.Join(plan, "\n"), "Seq Scan") {
		t.Fatalf("generic plan of LoadOwned does not use the owner index:\n%s", strings.Join(plan, "\n"))
	}
	if got := ownedKeys(t, s, "o7"); len(got) != 14 { // g = 7, 1007, ..., 19007, less the six multiples of 3
		t.Errorf("o7 owns %d sessions, want 14", len(got))
	}
}

// oldTable is the table CreateTable made before owners existed.
const oldTable = `CREATE TABLE %[1]s (
    session_id text COLLATE "C" NOT NULL PRIMARY KEY
               CHECK (octet_length(session_id) BETWEEN 1 AND 128),
    data       bytea       NOT NULL,
    atime      timestamptz NOT NULL,
    created    timestamptz NOT NULL,
    version    bigint      NOT NULL CHECK (version >= 1)
);
CREATE INDEX %[2]s ON %[1]s (atime);`

// TestMigrateOldTable: servers starting at once with the new CreateTable
// over a table made by the old one migrate it once, in place, and every
// session in it stays as it was.
func TestMigrateOldTable(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	ctx := ctxT(t)
	a := admin(t)
	const rows = 5000
	table := `"` + schema + `"."sessions"`
	a.MustExecContext(ctx, fmt.Sprintf(oldTable, table, `"sessions_atime_idx"`))
	a.MustExecContext(ctx, `INSERT INTO `+table+` SELECT 'k' || g, convert_to('data' || g, 'UTF8'), $1::timestamptz + g * interval '1 ms', $1, 1 + g % 5
FROM generate_series(1, $2::int) g`, t0, rows)
	var before []string
	dump := `SELECT session_id || ' ' || encode(data, 'escape') || ' ' || atime || ' ' || created || ' ' || version FROM ` + table + ` ORDER BY session_id`
	a.MustExecContext(ctx, `SET TimeZone = 'UTC'`)
	if err := a.SelectContext(ctx, &before, dump); err != nil {
		t.Fatal(err)
	}

	// A store of the new version, started before the migration, reports
	// the missing column with what to do, and works once it is done.
	early, err := New(ctx, openDB(t, dsn), WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if _, err := early.Load(ctx, "k1"); err == nil || !strings.Contains(err.Error(), "CreateTable") {
		t.Fatalf("Load before the migration = %v, want an error pointing to CreateTable", err)
	}

	const servers = 6
	stores := make([]*Store, servers)
	for i := range stores {
		if stores[i], err = New(ctx, openDB(t, dsn), WithSchema(schema)); err != nil {
			t.Fatal(err)
		}
		defer stores[i].Close()
	}
	start := make(chan struct{})
	errs := make(chan error, servers)
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- s.CreateTable(ctx)
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent CreateTable over the old table: %v", err)
		}
	}

	var after []string
	if err := a.SelectContext(ctx, &after, dump); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Fatalf("the migration changed the sessions: %d rows before, %d after", len(before), len(after))
	}
	var unowned int
	if err := a.GetContext(ctx, &unowned, `SELECT count(*) FROM `+table+` WHERE owner = ''`); err != nil || unowned != rows {
		t.Fatalf("%d rows without owner after the migration (%v), want %d", unowned, err, rows)
	}
	var idx []string
	if err := a.SelectContext(ctx, &idx, `SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`, schema); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(idx, []string{"sessions_atime_idx", "sessions_owner_idx", "sessions_pkey"}) {
		t.Fatalf("indexes after the migration: %v", idx)
	}

	// Every store works on the migrated table, the early one included.
	s := stores[0]
	if got := mustLoad(t, early, "k42"); string(got.Data) != "data42" || got.Version != 3 || got.Owner != "" {
		t.Fatalf("k42 after the migration: %+v", got)
	}
	r := rec("mine", t0)
	r.Owner = "owner1"
	mustCreate(t, s, "new", r)
	if err := s.Update(ctx, "k42", session.Record{Data: []byte("claimed"), ATime: t0, Version: 3, Owner: "owner1"}); err != nil {
		t.Fatal(err)
	}
	if got := ownedKeys(t, stores[servers-1], "owner1"); !slices.Equal(got, []string{"k42", "new"}) {
		t.Fatalf("owner1 owns %v", got)
	}
	// And running it again changes nothing.
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestOwnedSessionsAcrossStores: the index is as shared as the rows: what
// one server binds, another lists and ends.
func TestOwnedSessionsAcrossStores(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	a := newStore(t, openDB(t, dsn), WithSchema(schema))
	b := newStore(t, openDB(t, dsn), WithSchema(schema))
	ctx := context.Background()
	for i := range 5 {
		r := rec("x", t0)
		r.Owner = "u1"
		mustCreate(t, a, fmt.Sprint("s", i), r)
	}
	recs, err := b.LoadOwned(ctx, "u1")
	if err != nil || len(recs) != 5 {
		t.Fatalf("LoadOwned on the other server: %d records, %v", len(recs), err)
	}
	for _, r := range recs {
		if err := b.Delete(ctx, r.Key); err != nil {
			t.Fatal(err)
		}
	}
	if got := ownedKeys(t, a, "u1"); len(got) != 0 {
		t.Fatalf("u1 still owns %v", got)
	}
}
