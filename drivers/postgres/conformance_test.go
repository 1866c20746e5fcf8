package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
)

// harness returns the conformance harness over dsn: every namespace is a
// table of a schema made for this run, and every NewStore call a new pool,
// as a second application server would have.
func harness(tb testing.TB, dsn string) conformance.Harness {
	schema := newSchema(tb)
	return conformance.Harness{
		NewStore: func(tb testing.TB, namespace string) session.Store {
			db := openDB(tb, dsn)
			// CreateTable on every call: the second instance of a namespace
			// may come up while the first is still creating the table, and
			// CreateTable is safe to run concurrently.
			return newStore(tb, db, WithSchema(schema), WithTable("t_"+namespace))
		},
		Precision: time.Microsecond, // timestamptz
	}
}

// TestConformance runs the whole suite, nothing skipped.
func TestConformance(t *testing.T) {
	conformance.Run(t, harness(t, testDSN(t)))
}

// farZone is as far from UTC as a zone gets (UTC+14), and on the other
// side of the date line from the fake clock's UTC+05:45.
const farZone = "Pacific/Kiritimati"

// TestConformanceFarTimeZone runs the suite again with every connection's
// TimeZone set far from UTC: the store's times must not depend on it.
func TestConformanceFarTimeZone(t *testing.T) {
	dsn := withParam(testDSN(t), "timezone", farZone)
	db := openDB(t, dsn)
	var tz string
	if err := db.GetContext(context.Background(), &tz, "SHOW TimeZone"); err != nil || tz != farZone {
		t.Fatalf("connections opened with %q show TimeZone %q (%v)", dsn, tz, err)
	}
	conformance.Run(t, harness(t, dsn))
}

func BenchmarkConformance(b *testing.B) {
	conformance.RunBenchmarks(b, harness(b, testDSN(b)))
}
