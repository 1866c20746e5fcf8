package mysql

import (
	"context"

	session "github.com/websession/websession/core"
)

// ownerKeys lists the keys an operation validates: the store key, and the
// owner key when there is one ("" means none).
func ownerKeys(key, owner string) []string {
	if owner == "" {
		return []string{key}
	}
	return []string{key, owner}
}

// LoadOwned implements session.OwnerIndex with one SELECT through the
// index on owner: its cost grows with the owner's sessions, not with the
// table. Records expired but not yet cleaned up are included, as the
// contract says; the manager filters them.
func (s *Store) LoadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	const op = "load owned"
	st, err := s.begin(ctx, op, owner)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Key []byte `db:"session_id"`
		row
	}
	if err := retry(func() error { rows = rows[:0]; return st.loadOwned.SelectContext(ctx, &rows, owner) }); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	out := make([]session.OwnedRecord, len(rows))
	for i, r := range rows {
		out[i] = session.OwnedRecord{Key: string(r.Key), Record: r.record()}
	}
	return out, nil
}
