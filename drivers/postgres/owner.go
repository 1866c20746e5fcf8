package postgres

import (
	"context"

	session "github.com/websession/websession/core"
)

// loadOwnedQuery finds an owner's records through the partial index on
// owner (see Schema). The index holds only rows with an owner, so its
// predicate is repeated here: in a generic plan of the prepared statement
// PostgreSQL cannot prove from "owner = $1" alone that the owner is not
// empty, and would not use a partial index.
func loadOwnedQuery(table string) string {
	return `SELECT session_id, data, atime, created, version, owner FROM ` + table + ` WHERE owner = $1 AND owner <> ''`
}

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
	st, err := s.begin(ctx, "load owned", &s.loadOwned, owner)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Key string `db:"session_id"`
		row
	}
	if err := st.SelectContext(ctx, &rows, owner); err != nil {
		return nil, s.fail(ctx, "load owned", err)
	}
	out := make([]session.OwnedRecord, len(rows))
	for i, r := range rows {
		out[i] = session.OwnedRecord{Key: r.Key, Record: r.record()}
	}
	return out, nil
}
