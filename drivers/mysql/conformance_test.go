package mysql

import (
	"context"
	"sync"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
)

// harness runs the suite with one table per namespace, named prefix +
// namespace; change adjusts each store's pool configuration. Every
// NewStore call opens its own pool, as another server would.
func harness(tb testing.TB, prefix string, change func(*mysqldrv.Config), verify func(testing.TB, *Store)) conformance.Harness {
	var (
		mu      sync.Mutex
		created = map[string]bool{}
	)
	return conformance.Harness{
		Precision:  time.Microsecond, // DATETIME(6), truncated on the client
		MaxPayload: maxPayload(tb),
		NewStore: func(tb testing.TB, namespace string) session.Store {
			table := prefix + namespace
			mu.Lock()
			first := !created[table]
			created[table] = true
			mu.Unlock()
			if first {
				freshTable(tb, openPool(tb, nil), table)
			}
			db := openPool(tb, change)
			db.SetMaxOpenConns(20) // room for every instance under max_connections
			s := storeOn(tb, db, table)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.CreateTable(ctx); err != nil {
				tb.Fatal(err)
			}
			if verify != nil {
				verify(tb, s)
			}
			return s
		},
	}
}

// maxPayload is the largest data a store on the test server holds, so the
// suite stores exactly that and one byte more.
func maxPayload(tb testing.TB) int {
	tb.Helper()
	s, err := New(testCtx(tb), openPool(tb, nil))
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	return s.MaxDataSize()
}

func TestConformance(t *testing.T) {
	requireDB(t)
	conformance.Run(t, harness(t, "ws_", nil, nil))
}

// TestConformanceFarTimeZone runs the suite again with every connection's
// time_zone 13 hours east of UTC: DATETIME(6) holding UTC, written and read
// as UTC by the client, must not care.
func TestConformanceFarTimeZone(t *testing.T) {
	requireDB(t)
	const zone = "+13:00"
	far := func(c *mysqldrv.Config) { c.Params = map[string]string{"time_zone": "'" + zone + "'"} }
	verify := func(tb testing.TB, s *Store) {
		var got string
		if err := s.DB().QueryRow("SELECT @@session.time_zone").Scan(&got); err != nil || got != zone {
			tb.Fatalf("connection time_zone = %q (%v), want %s", got, err, zone)
		}
	}
	conformance.Run(t, harness(t, "wz_", far, verify))
}

func BenchmarkConformance(b *testing.B) {
	requireDB(b)
	conformance.RunBenchmarks(b, harness(b, "wb_", nil, nil))
}
