package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fillExpired inserts n rows with atimes before t0, named prefix0..., in
// one statement (the way the benchmark makes a million).
func fillExpired(t testing.TB, s *Store, prefix string, n int) {
	t.Helper()
	_, err := admin(t).Exec(`INSERT INTO `+s.Table()+` (session_id, data, atime, created, version)
SELECT $1 || g, '\x00'::bytea, $2::timestamptz - g * interval '1 millisecond', $2::timestamptz - interval '1 day', 1
FROM generate_series(1, $3::int) AS g`, prefix, t0, n)
	if err != nil {
		t.Fatal(err)
	}
}

func count(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	if err := admin(t).Get(&n, `SELECT count(*) FROM `+s.Table()); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCleanupBatches(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)), WithCleanupBatch(7))
	fillExpired(t, s, "old", 100)
	for i := range 30 {
		mustCreate(t, s, fmt.Sprint("live", i), rec("live", t0.Add(time.Duration(i)*time.Microsecond)))
	}
	n, err := s.Cleanup(ctxT(t), t0)
	if err != nil || n != 100 {
		t.Fatalf("Cleanup = %d, %v; want 100", n, err)
	}
	if left := count(t, s); left != 30 {
		t.Fatalf("%d rows left, want the 30 live ones", left)
	}
	if n, err := s.Cleanup(ctxT(t), t0); err != nil || n != 0 {
		t.Fatalf("second Cleanup = %d, %v; want 0", n, err)
	}
}

// TestCleanupSkipsLockedRows: rows another transaction holds (a request
// writing them, or another server's cleanup batch) are skipped, not waited
// for, and the next run gets them.
func TestCleanupSkipsLockedRows(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)), WithCleanupBatch(10))
	fillExpired(t, s, "old", 50)
	tx := admin(t).MustBegin()
	defer func() { _ = tx.Rollback() }()
	var held []string
	if err := tx.Select(&held, `SELECT session_id FROM `+s.Table()+` WHERE session_id IN ('old1', 'old7', 'old25', 'old49', 'old50') FOR UPDATE`); err != nil || len(held) != 5 {
		t.Fatalf("locking rows: %v, %v", held, err)
	}
	// Were Cleanup to wait for the held rows, it would run into this
	// deadline and fail.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := s.Cleanup(ctx, t0)
	if err != nil || n != 45 {
		t.Fatalf("Cleanup beside locked rows = %d, %v; want the 45 free ones", n, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Cleanup(ctxT(t), t0); err != nil || n != 5 {
		t.Fatalf("Cleanup after the locks went = %d, %v; want 5", n, err)
	}
}

// TestCleanupConcurrentServers: servers cleaning at once each delete a
// share, and every row exactly once.
func TestCleanupConcurrentServers(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	const servers, rows = 3, 20000
	stores := make([]*Store, servers)
	for i := range stores {
		stores[i] = newStore(t, openDB(t, dsn), WithSchema(schema), WithCleanupBatch(200))
	}
	fillExpired(t, stores[0], "old", rows)
	ctx := ctxT(t)
	counts := make([]int, servers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			n, err := s.Cleanup(ctx, t0)
			if err != nil {
				t.Errorf("server %d: Cleanup: %v", i, err)
			}
			counts[i] = n
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != rows || count(t, stores[0]) != 0 {
		t.Fatalf("servers deleted %v (total %d) and left %d rows; want %d in total and none left", counts, total, count(t, stores[0]), rows)
	}
	t.Logf("rows deleted per server: %v", counts)
}

// TestCleanupStopsOnContext: a Cleanup stuck behind a lock ends when its
// context does, with the context's error, and deletes nothing more.
func TestCleanupStopsOnContext(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)), WithCleanupBatch(10))
	fillExpired(t, s, "old", 100)
	// A DBA's LOCK TABLE (or a migration) holds the table.
	tx := admin(t).MustBegin()
	defer func() { _ = tx.Rollback() }()
	var holder int
	if err := tx.Get(&holder, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	tx.MustExec(`LOCK TABLE ` + s.Table() + ` IN SHARE MODE`)
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := s.Cleanup(ctx, t0)
		done <- result{n, err}
	}()
	waitBlocked(t, holder)
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || r.n != 0 {
		t.Fatalf("Cleanup cancelled while blocked = %d, %v; want 0, context.Canceled", r.n, r.err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if left := count(t, s); left != 100 {
		t.Fatalf("%d rows left after the cancelled Cleanup, want 100", left)
	}
	if n, err := s.Cleanup(ctxT(t), t0); err != nil || n != 100 {
		t.Fatalf("Cleanup afterwards = %d, %v; want 100", n, err)
	}
}
