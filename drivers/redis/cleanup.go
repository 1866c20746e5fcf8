package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// scriptsPerPipeline bounds the cleanup scripts sent in one pipeline, so
// that the keys in flight stay within a few megabytes.
const scriptsPerPipeline = 32

// Cleanup implements session.Store. It never scans the key space: it
// reads each shard's access-time index from its oldest entry up to the
// cutoff, a batch at a time (WithCleanupBatch), and hands each batch to a
// script that deletes the records whose exact ATime, read by the script
// itself, is before cutoff. A record touched after Cleanup read the index
// is therefore kept. The reads of all shards go in one pipeline, the
// scripts in pipelines of up to 32, so a Cleanup with nothing to delete
// costs one round trip per node, and a large one a round trip per 32
// batches. ctx is checked between pipelines; the count deleted so far is
// returned with any error.
//
// Entries whose record Redis has expired (WithExpiry) are dropped on the
// way, and the deleted records' entries in their owners' sets are removed
// afterwards.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	hi, lo, ns := timeWords(cutoff)
	cutScore := strconv.FormatInt(score(cutoff), 10)
	batch := s.opts.batch

	// offset[shard]: entries at the cutoff's score that a script kept
	// (their exact ATime is not before cutoff). They sort after every
	// entry below that score and before the unread ones at it, so the
	// next read of the shard skips them.
	type shardRead struct {
		shard, offset int
		cmd           *redis.StringSliceCmd
	}
	active := make([]shardRead, Shards)
	for i := range active {
		active[i].shard = i
	}
	total := 0
	owned := map[string][]string{} // owner -> member, token, ...
	defer func() { s.dropOwnedAll(ctx, owned) }()
	for len(active) > 0 {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		pipe := s.client.Pipeline()
		for i := range active {
			r := &active[i]
			r.cmd = pipe.ZRangeByScore(ctx, s.indexKey[r.shard], &redis.ZRangeBy{
				Min: "-inf", Max: cutScore, Offset: int64(r.offset), Count: int64(batch),
			})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return total, wrap(ctx, "cleanup", err)
		}
		var calls []scriptCall
		var from []int // index in active of each call
		for i, r := range active {
			members := r.cmd.Val()
			if len(members) == 0 {
				continue
			}
			keys := make([]string, 1+len(members))
			args := make([]any, 4+len(members))
			keys[0] = s.indexKey[r.shard]
			args[0], args[1], args[2], args[3] = hi, lo, ns, cutScore
			for j, m := range members {
				keys[1+j] = s.recPrefix[r.shard] + m
				args[4+j] = m
			}
			calls = append(calls, scriptCall{keys, args})
			from = append(from, i)
		}
		var next []shardRead
		for start := 0; start < len(calls); start += scriptsPerPipeline {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			end := min(start+scriptsPerPipeline, len(calls))
			cmds, err := evalPipelined(ctx, s.client, cleanScript, calls[start:end])
			if err != nil {
				return total, wrap(ctx, "cleanup", err)
			}
			for j, cmd := range cmds {
				res, err := cmd.Slice()
				if err != nil {
					return total, wrap(ctx, "cleanup", err)
				}
				deleted, _ := res[0].(int64)
				kept, _ := res[1].(int64)
				total += int(deleted)
				for k := 2; k+2 < len(res); k += 3 {
					owner, _ := res[k].(string)
					token, _ := res[k+1].(string)
					member, _ := res[k+2].(string)
					owned[owner] = append(owned[owner], member, token)
				}
				r := active[from[start+j]]
				if len(r.cmd.Val()) == batch {
					next = append(next, shardRead{shard: r.shard, offset: r.offset + int(kept)})
				}
			}
		}
		active = next
	}
	return total, nil
}

// dropOwnedAll removes the entries of deleted records from their owners'
// sets, in one pipeline. Like dropOwned, it is tidying: LoadOwned skips
// and drops entries whose record is gone.
func (s *Store) dropOwnedAll(ctx context.Context, owned map[string][]string) {
	if len(owned) == 0 {
		return
	}
	calls := make([]scriptCall, 0, len(owned))
	for owner, pairs := range owned {
		args := make([]any, len(pairs))
		for i, p := range pairs {
			args[i] = p
		}
		calls = append(calls, scriptCall{[]string{s.ownerKey(owner)}, args})
	}
	_, _ = evalPipelined(ctx, s.client, ownerDelScript, calls)
}
