package mysql

import (
	"bytes"
	"database/sql"
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
	recs, err := s.LoadOwned(testCtx(t), owner)
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
	s := newTestStore(t, "ws_owners", nil)
	ctx := testCtx(t)
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

	// LoadOwned's plan reads the owner index, not the table.
	plan, err := explain(s, "SELECT session_id, data, atime, created, version, owner FROM "+s.Table()+" WHERE owner = 'alice'")
	if err != nil {
		t.Fatal(err)
	}
	if plan["key"] != "idx_owner" {
		t.Fatalf("LoadOwned's plan: %v, want the idx_owner index", plan)
	}
}

// explain returns the first row of EXPLAIN query by column name (the
// columns differ between MySQL and MariaDB).
func explain(s *Store, query string) (map[string]string, error) {
	rows, err := s.DB().Query("EXPLAIN " + query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, fmt.Errorf("EXPLAIN returned no row: %v", rows.Err())
	}
	vals := make([]sql.NullString, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, n := range names {
		out[n] = vals[i].String
	}
	return out, nil
}

// oldTable is the table CreateTable made before owners existed.
const oldTable = "CREATE TABLE %s (\n" +
	"  session_id VARBINARY(128) NOT NULL,\n" +
	"  atime DATETIME(6) NOT NULL,\n" +
	"  data LONGBLOB NOT NULL,\n" +
	"  created DATETIME(6) NOT NULL,\n" +
	"  version BIGINT UNSIGNED NOT NULL,\n" +
	"  PRIMARY KEY (session_id),\n" +
	"  KEY idx_atime (atime)\n" +
	") ENGINE=InnoDB"

// TestMigrateOldTable: servers starting at once with the new CreateTable
// over a table made by the old one migrate it once, in place, and every
// session in it stays as it was.
func TestMigrateOldTable(t *testing.T) {
	const table, rows = "ws_migrate", 5000
	ctx := testCtx(t)
	admin := openPool(t, nil)
	freshTable(t, admin, table)
	if _, err := admin.ExecContext(ctx, fmt.Sprintf(oldTable, "`"+table+"`")); err != nil {
		t.Fatal(err)
	}
	fillExpired(t, admin, table, rows, t0)
	dump := func() []string {
		t.Helper()
		r, err := admin.QueryContext(ctx, "SELECT CONCAT_WS(' ', session_id, data, CAST(atime AS CHAR), CAST(created AS CHAR), version) FROM `"+table+"` ORDER BY session_id")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []string
		for r.Next() {
			var line string
			if err := r.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, line)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := dump()

	// A store of the new version, started before the migration, reports
	// the missing column with what to do, and works once it is done.
	early := storeOn(t, openPool(t, nil), table)
	if _, err := early.Load(ctx, "expired1"); err == nil || !strings.Contains(err.Error(), "CreateTable adds it") {
		t.Fatalf("Load before the migration = %v, want an error pointing to CreateTable", err)
	}

	const servers = 6
	stores := make([]*Store, servers)
	for i := range stores {
		stores[i] = storeOn(t, openPool(t, nil), table)
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
	if after := dump(); !slices.Equal(before, after) {
		t.Fatalf("the migration changed the sessions: %d rows before, %d after", len(before), len(after))
	}
	var unowned int
	if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+table+"` WHERE owner = ''").Scan(&unowned); err != nil || unowned != rows {
		t.Fatalf("%d rows without owner after the migration (%v), want %d", unowned, err, rows)
	}
	var indexes int
	if err := admin.QueryRowContext(ctx, "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", table).Scan(&indexes); err != nil || indexes != 3 {
		t.Fatalf("%d indexes after the migration (%v), want the primary key, idx_atime and idx_owner", indexes, err)
	}

	// Every store works on the migrated table, the early one included.
	s := stores[0]
	if got := mustLoad(t, early, "expired42"); string(got.Data) != "payload" || got.Version != 1 || got.Owner != "" {
		t.Fatalf("expired42 after the migration: %+v", got)
	}
	r := rec("mine", t0)
	r.Owner = "owner1"
	mustCreate(t, s, "new", r)
	if err := s.Update(ctx, "expired42", session.Record{Data: []byte("claimed"), ATime: t0, Version: 1, Owner: "owner1"}); err != nil {
		t.Fatal(err)
	}
	if got := ownedKeys(t, stores[servers-1], "owner1"); !slices.Equal(got, []string{"expired42", "new"}) {
		t.Fatalf("owner1 owns %v", got)
	}
	// And running it again changes nothing.
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
}
