package postgres

import (
	"context"
	"time"
)

// cleanupQuery deletes one bounded batch, oldest first along the atime
// index. SKIP LOCKED lets servers that clean at the same time split the
// work instead of queueing on (and then redoing) each other's rows; a row
// locked by a request in flight is left for the next run, since that
// request is about to give it a new atime anyway. FOR UPDATE also re-checks
// atime on the newest version of a row touched meanwhile, so a session
// touched during the cleanup survives it, and the lock it takes holds
// every other writer off the row until the batch's DELETE has run.
//
// "= ANY (ARRAY(subquery))" rather than "IN (subquery)": the array is
// computed once and the rows are then found through the primary key,
// whereas PostgreSQL plans IN here as a hash semi-join over a scan of the
// whole table, for every batch.
func cleanupQuery(table string) string {
	return `DELETE FROM ` + table + ` WHERE session_id = ANY (ARRAY(
	SELECT session_id FROM ` + table + ` WHERE atime < $1 ORDER BY atime LIMIT $2 FOR UPDATE SKIP LOCKED
))`
}

// Cleanup implements session.Store. It deletes in batches of at most the
// configured size (WithCleanupBatch), each its own statement and
// transaction, oldest first, until a batch comes back short; so a million
// expired rows never make one giant transaction or hold long locks, and
// requests on live sessions proceed between and during batches. Servers
// cleaning at the same time skip the rows another one holds. A row locked
// by a request in flight is skipped too and left for the next run. The
// context is checked between batches; on error the count so far is
// returned with it. Owned sessions go with their rows: the owner index
// holds nothing else.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	st, err := s.begin(ctx, "cleanup", &s.cleanup)
	if err != nil {
		return 0, err
	}
	// Truncating the cutoff can only keep a row that is less than a
	// microsecond older than it; rounding up could delete a live one.
	c := dbTime(cutoff)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, opError("cleanup", err)
		}
		res, err := st.ExecContext(ctx, c, s.batch)
		if err != nil {
			return total, s.fail(ctx, "cleanup", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, s.fail(ctx, "cleanup", err)
		}
		total += int(n)
		if n < int64(s.batch) {
			return total, nil
		}
	}
}
