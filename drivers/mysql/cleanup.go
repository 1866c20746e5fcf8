package mysql

import (
	"context"
	"time"
)

// Cleanup implements session.Store. It works in batches of at most the
// cleanup batch size, until a batch comes back short; ctx is checked between
// batches, and the count deleted so far is returned with any error.
//
// A batch is two statements: a plain (non-locking) read of up to n expired
// keys in atime order, through the atime index (from where the previous
// batch ended), then
// DELETE ... WHERE atime < ? AND session_id IN (those keys). The delete
// finds its rows by primary key and re-checks atime under the row lock, so
// a session that a request touched meanwhile is kept. Every statement of
// the store thus locks a row's primary key before its atime index entry:
// no lock-order inversion, so no deadlock with requests or with another
// server's Cleanup (a single DELETE ... ORDER BY atime LIMIT n walks the
// atime index first, and the server then kills requests moving an atime as
// deadlock victims). Two servers cleaning at once may read the same keys;
// their deletes queue behind each other for milliseconds, and each row is
// deleted, and counted, once. A Cleanup with nothing to delete is one
// read, taking no locks.
//
// The cutoff is truncated to the microsecond, as stored times are, so a
// record is never deleted early. A cutoff after 9999-12-31 23:59:59.999999
// (DATETIME's end) is treated as that instant.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	const op = "cleanup"
	st, err := s.begin(ctx, op)
	if err != nil {
		return 0, err
	}
	c := cutoff.UTC().Truncate(time.Microsecond)
	if c.Before(minTime) {
		return 0, nil // no storable time is before it
	}
	if c.After(maxTime) {
		c = maxTime
	}
	total := 0
	args := make([]any, 1+s.batch) // cutoff, then the keys
	args[0] = c
	// Each read starts at the last atime the previous one saw, rather than
	// walking again over the index entries of rows just deleted, which
	// InnoDB keeps (marked) until its purge catches up.
	from := minTime
	for {
		if err := ctx.Err(); err != nil {
			return total, opError(op, err)
		}
		keys, last, err := st.expiredKeys(ctx, from, c, s.batch)
		if err != nil {
			return total, s.fail(ctx, op, err)
		}
		if len(keys) == 0 {
			return total, nil
		}
		for i := range s.batch {
			// A short batch repeats its last key: the IN list has a fixed
			// length, so one prepared statement serves every batch.
			args[1+i] = keys[min(i, len(keys)-1)]
		}
		var n int64
		err = retry(func() error {
			res, err := st.purge.ExecContext(ctx, args...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		total += int(n)
		if err != nil {
			return total, s.fail(ctx, op, err)
		}
		if len(keys) < s.batch {
			return total, nil
		}
		from = last
	}
}

// expiredKeys reads up to n keys whose atime is in [from, cutoff), oldest
// first, without locking anything, and returns the atime of the last.
func (st *statements) expiredKeys(ctx context.Context, from, cutoff time.Time, n int) ([][]byte, time.Time, error) {
	rows, err := st.expired.QueryContext(ctx, from, cutoff)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rows.Close()
	keys := make([][]byte, 0, n)
	var last time.Time
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k, &last); err != nil {
			return nil, time.Time{}, err
		}
		keys = append(keys, k)
	}
	return keys, last, rows.Err()
}
