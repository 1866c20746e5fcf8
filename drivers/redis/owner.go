package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
	session "github.com/websession/websession/core"
)

// Each owner has a hash, "<prefix>o:{<owner>}", in a hash slot of its own
// (the owner is its hash tag): field = session key, value = the token of
// the binding, which the record holds too. The records themselves live in
// their shards' slots, so in a Cluster a record and its owner's entry
// cannot change in one atomic step. The rules that keep LoadOwned exact
// anyway (see the package documentation):
//
//   - A binding's entry is written before a record says it belongs to that
//     owner (Update), or, for a new record, before its id can be handed out
//     (Create, which writes the record first): every live record bound to
//     an owner has its entry.
//   - LoadOwned reads each listed record and returns only those that exist
//     and name that owner. It removes the entries whose record is gone,
//     and only if the entry still has the token it read.
//   - Delete, Cleanup and an Update that changes the owner remove the old
//     entry afterwards, only if it still has the record's token: an entry
//     rewritten by a newer binding of the same session stays.
//
// A failure between the steps leaves at most an entry that readers skip.

// pruneFrom is the owner-set length from which a binding that makes the
// set's length a power of two also prunes the set (see maybePrune).
const pruneFrom = 64

func (s *Store) ownerKey(owner string) string {
	return s.opts.prefix + "o:{" + owner + "}"
}

// LoadOwned implements session.OwnerIndex: it reads the owner's set, then
// the records it lists, in one pipeline (on a Cluster, one round trip per
// node involved), and returns those that still belong to owner. Its cost
// grows with the owner's sessions only.
func (s *Store) LoadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	if err := s.begin(ctx, "load owned", owner); err != nil {
		return nil, err
	}
	recs, err := s.loadOwned(ctx, owner)
	if err != nil {
		return nil, wrap(ctx, "load owned", err)
	}
	return recs, nil
}

func (s *Store) loadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	entries, err := s.client.HGetAll(ctx, s.ownerKey(owner)).Result()
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return []session.OwnedRecord{}, nil
	}
	keys := make([]string, 0, len(entries))
	cmds := make([]*redis.StringCmd, 0, len(entries))
	pipe := s.client.Pipeline()
	for key := range entries {
		if !session.ValidKey(key) {
			continue // not written by this store; never a record's key
		}
		keys = append(keys, key)
		cmds = append(cmds, pipe.Get(ctx, s.recPrefix[shardOf(key)]+key))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	out := make([]session.OwnedRecord, 0, len(keys))
	var gone []string // member, token, ...
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if err == redis.Nil {
			gone = append(gone, keys[i], entries[keys[i]])
			continue
		}
		if err != nil {
			return nil, err
		}
		rec, err := decode(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.recPrefix[shardOf(keys[i])]+keys[i], err)
		}
		if rec.Owner == owner {
			out = append(out, session.OwnedRecord{Key: keys[i], Record: rec})
		}
		// A record bound to another owner keeps its entry here: it may be
		// an Update moving it to this owner, between its two steps.
	}
	s.dropOwned(ctx, owner, gone)
	return out, nil
}

// dropOwned removes entries (member, token pairs) from owner's set, each
// only if it still has that token. It is tidying, not correctness:
// readers skip what it leaves, so its failure is not reported.
func (s *Store) dropOwned(ctx context.Context, owner string, pairs []string) {
	if owner == "" || len(pairs) == 0 {
		return
	}
	args := make([]any, len(pairs))
	for i, p := range pairs {
		args[i] = p
	}
	_ = s.run(ctx, ownerDelScript, []string{s.ownerKey(owner)}, args...).Err()
}

// maybePrune keeps an owner's set within about twice its live sessions
// when nothing else removes its entries (records expired by Redis, whose
// owner never lists them): a binding that brings the set to a power of
// two, from pruneFrom on, reads the set as LoadOwned does, which drops
// the entries of records gone. The cost is proportional to the set and
// comes at doubling sizes, so it is constant per binding on average.
func (s *Store) maybePrune(ctx context.Context, owner string, n int64) {
	if n >= pruneFrom && n&(n-1) == 0 {
		_, _ = s.loadOwned(ctx, owner)
	}
}
