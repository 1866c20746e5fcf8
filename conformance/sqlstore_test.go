package conformance

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// sqlStore is a store written the way third parties write stores over
// SQL, against a simulated table: sessions(app, key, data, atime,
// created, version, owner), primary key (app, key), times as text. Every
// namespace is an app of the one table, as two applications share one
// database. Each method is a sequence of statements; each statement runs
// atomically, after a yield for its round trip, so the gaps between the
// statements of one call are as real as over a network. With bug "" it
// is correct and must pass the whole suite; each sql-* defect is a
// mistake found in real stores.
type sqlStore struct {
	db     *sqlDB
	app    string
	bug    string
	closed atomic.Bool

	bufMu sync.Mutex
	buf   []byte // sqlRawBytes: the scratch buffer Load scans into
}

// The defects of sqlStore.
const (
	sqlTextTime         = "sql-text-time"
	sqlLocalFormat      = "sql-local-format"
	sqlLocalWallClock   = "sql-local-wall-clock"
	sqlCleanupOneBatch  = "sql-cleanup-one-batch"
	sqlCleanupTwoPhase  = "sql-cleanup-two-phase"
	sqlCleanupAllApps   = "sql-cleanup-all-apps"
	sqlDeleteAllApps    = "sql-delete-all-apps"
	sqlDeleteLike       = "sql-delete-like"
	sqlGreatestATime    = "sql-greatest-atime"
	sqlTouchRowsChanged = "sql-touch-rows-changed"
	sqlTouchReadWrite   = "sql-touch-read-write"
	sqlConflictNotFound = "sql-conflict-as-not-found"
	sqlRawBytes         = "sql-raw-bytes"
	sqlSelectInsert     = "sql-select-then-insert"
	sqlRacyVersion      = "sql-racy-version-check"
	sqlOwnerLike        = "sql-owner-like"
	sqlOwnerAllApps     = "sql-owner-all-apps"
)

func init() {
	for bug, what := range map[string]string{
		sqlTextTime:         "SQL table, times as RFC 3339 text (trailing zeros dropped), compared as text",
		sqlLocalFormat:      "SQL table, times written in time.Local's wall clock, read back as UTC",
		sqlLocalWallClock:   "SQL table, times kept as time.Local wall clock without offset, both ways",
		sqlCleanupOneBatch:  "SQL table, Cleanup's DELETE ... LIMIT 1000 loop runs once",
		sqlCleanupTwoPhase:  "SQL table, Cleanup selects idle keys, then deletes them by key without checking again",
		sqlCleanupAllApps:   "SQL table shared by apps, Cleanup's DELETE forgets WHERE app = ?",
		sqlDeleteAllApps:    "SQL table shared by apps, Delete's DELETE forgets WHERE app = ?",
		sqlDeleteLike:       "SQL table, Delete matches the key with LIKE",
		sqlGreatestATime:    "SQL table, Update sets atime = GREATEST(atime, ?)",
		sqlTouchRowsChanged: "SQL table, Touch answers ErrNotFound when the UPDATE changed no row (MySQL's rows-affected)",
		sqlTouchReadWrite:   "SQL table, Touch SELECTs the row, then REPLACEs it whole",
		sqlConflictNotFound: "SQL table, Update answers ErrNotFound whenever its conditional UPDATE matched no row",
		sqlRawBytes:         "SQL table, Load returns the scan buffer it reuses (sql.RawBytes)",
		sqlSelectInsert:     "SQL table without a unique key, Create SELECTs, then INSERTs",
		sqlRacyVersion:      "SQL table, Update SELECTs the version, compares, then UPDATEs by key",
		sqlOwnerLike:        "SQL table, LoadOwned matches the owner with LIKE",
		sqlOwnerAllApps:     "SQL table shared by apps, LoadOwned forgets WHERE app = ?",
	} {
		defects[bug] = what
	}
}

// sqlDB is the simulated database: one table, rows by app and key.
type sqlDB struct {
	mu   sync.Mutex
	rows map[string]map[string]*sqlRow // app → key → row
}

type sqlRow struct {
	data           []byte
	atime, created string
	version        uint64
	owner          string
}

func (r *sqlRow) clone() *sqlRow {
	c := *r
	c.data = append([]byte{}, r.data...)
	return &c
}

// exec runs one statement: a round trip, then fn atomically.
func (db *sqlDB) exec(fn func()) {
	runtime.Gosched()
	db.mu.Lock()
	defer db.mu.Unlock()
	fn()
}

// table returns the rows of app; db.mu is held.
func (db *sqlDB) table(app string) map[string]*sqlRow {
	t := db.rows[app]
	if t == nil {
		t = map[string]*sqlRow{}
		db.rows[app] = t
	}
	return t
}

// sqlHarness is the Harness of a sqlStore with the given defect: every
// namespace an app of one shared table.
func sqlHarness(bug string) Harness {
	db := &sqlDB{rows: map[string]map[string]*sqlRow{}}
	return Harness{
		NewStore: func(tb testing.TB, ns string) session.Store {
			return &sqlStore{db: db, app: ns, bug: bug}
		},
	}
}

const sqlTimeLayout = "2006-01-02 15:04:05.000000000"

// text is how the store writes a time into a text column.
func (s *sqlStore) text(t time.Time) string {
	switch s.bug {
	case sqlTextTime:
		return t.UTC().Format(time.RFC3339Nano)
	case sqlLocalFormat, sqlLocalWallClock:
		return t.In(time.Local).Format(sqlTimeLayout)
	}
	return t.UTC().Format(sqlTimeLayout) // fixed width, UTC: sorts as time does
}

// time reads a time back from a text column.
func (s *sqlStore) time(v string) time.Time {
	var t time.Time
	switch s.bug {
	case sqlTextTime:
		t, _ = time.Parse(time.RFC3339Nano, v)
	case sqlLocalWallClock:
		t, _ = time.ParseInLocation(sqlTimeLayout, v, time.Local)
	default:
		t, _ = time.Parse(sqlTimeLayout, v)
	}
	return t
}

func (s *sqlStore) check(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlstore: %w", session.ErrClosed)
	}
	return ctx.Err()
}

// record turns a row into a Record; scan is true for Load, which (with
// sqlRawBytes) hands out its scan buffer.
func (s *sqlStore) record(r *sqlRow, scan bool) session.Record {
	data := append([]byte{}, r.data...)
	if scan && s.bug == sqlRawBytes {
		s.bufMu.Lock()
		s.buf = append(s.buf[:0], r.data...)
		data = s.buf[:len(r.data):len(r.data)]
		s.bufMu.Unlock()
	}
	return session.Record{Data: data, ATime: s.time(r.atime), Created: s.time(r.created), Version: r.version, Owner: r.owner}
}

func (s *sqlStore) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *sqlStore) Load(ctx context.Context, key string) (session.Record, error) {
	if err := s.check(ctx); err != nil {
		return session.Record{}, err
	}
	var row *sqlRow
	s.db.exec(func() { // SELECT ... WHERE app = ? AND key = ?
		if r := s.db.table(s.app)[key]; r != nil {
			row = r.clone()
		}
	})
	if row == nil {
		return session.Record{}, session.ErrNotFound
	}
	return s.record(row, true), nil
}

func (s *sqlStore) Create(ctx context.Context, key string, rec session.Record) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if !session.ValidKey(key) {
		return fmt.Errorf("sqlstore: %w", session.ErrInvalidKey)
	}
	row := &sqlRow{data: append([]byte{}, rec.Data...), atime: s.text(rec.ATime), created: s.text(rec.Created), version: 1, owner: rec.Owner}
	if s.bug == sqlSelectInsert {
		exists := false
		s.db.exec(func() { exists = s.db.table(s.app)[key] != nil }) // SELECT count(*)
		if exists {
			return session.ErrExists
		}
		s.db.exec(func() { s.db.table(s.app)[key] = row }) // INSERT, no unique key
		return nil
	}
	taken := false
	s.db.exec(func() { // INSERT, primary key (app, key)
		t := s.db.table(s.app)
		if t[key] != nil {
			taken = true
			return
		}
		t[key] = row
	})
	if taken {
		return session.ErrExists
	}
	return nil
}

func (s *sqlStore) Update(ctx context.Context, key string, rec session.Record) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	set := func(r *sqlRow) {
		r.data = append([]byte{}, rec.Data...)
		if s.bug == sqlGreatestATime {
			r.atime = max(r.atime, s.text(rec.ATime))
		} else {
			r.atime = s.text(rec.ATime)
		}
		r.version++
		r.owner = rec.Owner
	}
	if s.bug == sqlRacyVersion {
		var version uint64
		found := false
		s.db.exec(func() { // SELECT version
			if r := s.db.table(s.app)[key]; r != nil {
				version, found = r.version, true
			}
		})
		if !found {
			return session.ErrNotFound
		}
		if version != rec.Version {
			return session.ErrConflict
		}
		s.db.exec(func() { // UPDATE ... WHERE app = ? AND key = ?
			if r := s.db.table(s.app)[key]; r != nil {
				set(r)
			}
		})
		return nil
	}
	affected := 0
	s.db.exec(func() { // UPDATE ... WHERE app = ? AND key = ? AND version = ?
		if r := s.db.table(s.app)[key]; r != nil && r.version == rec.Version {
			set(r)
			affected = 1
		}
	})
	if affected == 1 {
		return nil
	}
	if s.bug == sqlConflictNotFound {
		return session.ErrNotFound
	}
	exists := false
	s.db.exec(func() { exists = s.db.table(s.app)[key] != nil }) // SELECT 1
	if exists {
		return session.ErrConflict
	}
	return session.ErrNotFound
}

func (s *sqlStore) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	at := s.text(atime)
	if s.bug == sqlTouchReadWrite {
		var row *sqlRow
		s.db.exec(func() { // SELECT *
			if r := s.db.table(s.app)[key]; r != nil {
				row = r.clone()
			}
		})
		if row == nil {
			return session.ErrNotFound
		}
		row.atime = at
		s.db.exec(func() { s.db.table(s.app)[key] = row }) // REPLACE INTO
		return nil
	}
	changed := 0
	s.db.exec(func() { // UPDATE ... SET atime = ? WHERE app = ? AND key = ?
		if r := s.db.table(s.app)[key]; r != nil && r.atime != at {
			r.atime = at
			changed = 1 // rows affected counts changed rows, as MySQL's does
		}
	})
	if changed == 1 {
		return nil
	}
	if s.bug == sqlTouchRowsChanged {
		return session.ErrNotFound
	}
	exists := false
	s.db.exec(func() { exists = s.db.table(s.app)[key] != nil }) // SELECT 1
	if !exists {
		return session.ErrNotFound
	}
	return nil
}

func (s *sqlStore) Delete(ctx context.Context, key string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	s.db.exec(func() {
		switch s.bug {
		case sqlDeleteAllApps: // DELETE ... WHERE key = ?
			for _, t := range s.db.rows {
				delete(t, key)
			}
		case sqlDeleteLike: // DELETE ... WHERE app = ? AND key LIKE ?
			t := s.db.table(s.app)
			for k := range t {
				if like(k, key) {
					delete(t, k)
				}
			}
		default:
			delete(s.db.table(s.app), key)
		}
	})
	return nil
}

// sqlCleanupBatch is how many rows one Cleanup statement deletes.
const sqlCleanupBatch = 1000

func (s *sqlStore) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	c := s.text(cutoff)
	tables := func() []map[string]*sqlRow {
		if s.bug == sqlCleanupAllApps {
			var all []map[string]*sqlRow
			for _, t := range s.db.rows {
				all = append(all, t)
			}
			return all
		}
		return []map[string]*sqlRow{s.db.table(s.app)}
	}
	if s.bug == sqlCleanupTwoPhase {
		var idle []string
		s.db.exec(func() { // SELECT key ... WHERE atime < ?
			for k, r := range s.db.table(s.app) {
				if r.atime < c {
					idle = append(idle, k)
				}
			}
		})
		n := 0
		s.db.exec(func() { // DELETE ... WHERE key IN (...)
			t := s.db.table(s.app)
			for _, k := range idle {
				if t[k] != nil {
					delete(t, k)
					n++
				}
			}
		})
		return n, nil
	}
	total := 0
	for {
		n := 0
		s.db.exec(func() { // DELETE ... WHERE app = ? AND atime < ? LIMIT 1000
			for _, t := range tables() {
				for k, r := range t {
					if n == sqlCleanupBatch {
						return
					}
					if r.atime < c {
						delete(t, k)
						n++
					}
				}
			}
		})
		total += n
		if n < sqlCleanupBatch || s.bug == sqlCleanupOneBatch {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

var _ session.OwnerIndex = (*sqlStore)(nil)

func (s *sqlStore) LoadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if !session.ValidKey(owner) && s.bug != sqlOwnerLike {
		return nil, fmt.Errorf("sqlstore: owner: %w", session.ErrInvalidKey)
	}
	var rows []session.OwnedRecord
	var found []*sqlRow
	var keys []string
	s.db.exec(func() { // SELECT ... WHERE app = ? AND owner = ?
		for app, t := range s.db.rows {
			if app != s.app && s.bug != sqlOwnerAllApps {
				continue
			}
			for k, r := range t {
				if r.owner == owner || s.bug == sqlOwnerLike && like(r.owner, owner) {
					keys, found = append(keys, k), append(found, r.clone())
				}
			}
		}
	})
	for i, r := range found {
		rows = append(rows, session.OwnedRecord{Key: keys[i], Record: s.record(r, false)})
	}
	return rows, nil
}

// like reports whether s matches the SQL LIKE pattern p ('%' any run,
// '_' any one character).
func like(s, p string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '%':
		for i := 0; i <= len(s); i++ {
			if like(s[i:], p[1:]) {
				return true
			}
		}
		return false
	case '_':
		return s != "" && like(s[1:], p[1:])
	}
	return s != "" && s[0] == p[0] && like(s[1:], p[1:])
}
