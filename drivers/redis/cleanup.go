package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// readGroup is how many shards' indexes one pipelined read covers.
const readGroup = 16

// Cleanup implements session.Store. It never scans the key space: it
// reads each shard's access-time index from its oldest entry up to the
// cutoff, a batch at a time (WithCleanupBatch), and hands each batch to a
// script that reads every candidate's exact ATime from the record itself
// and deletes those before cutoff: a record touched after Cleanup read the
// index is kept. Shards are read 16 at a time, in one pipeline; the
// scripts run one at a time, so that requests queue behind at most one
// batch's work on a node, never behind a pipeline of them. A Cleanup with
// nothing to delete costs 64 round trips of 16 small reads. ctx is checked
// between steps; the count deleted so far is returned with any error.
//
// Entries whose record Redis has expired (WithExpiry) are dropped on the
// way, and the deleted records' entries in their owners' sets are removed
// afterwards. A key in the index that holds no record of this store is
// left alone and dropped from the index, and Cleanup, having done the
// rest, returns an error wrapping ErrCorrupt that names one such key.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c := cleanup{s: s, ctx: ctx, owned: map[string][]string{}}
	c.hi, c.lo, c.ns = timeWords(cutoff)
	c.cutScore = strconv.FormatInt(score(cutoff), 10)
	defer func() { s.dropOwnedAll(ctx, c.owned) }()
	for first := 0; first < Shards; first += readGroup {
		if err := c.shards(first, min(first+readGroup, Shards)); err != nil {
			return c.total, wrap(ctx, "cleanup", err)
		}
	}
	if n := len(c.corrupt); n > 0 {
		return c.total, fmt.Errorf("redis: cleanup: %d keys left alone, such as %s: %w", n, c.corrupt[0], ErrCorrupt)
	}
	return c.total, nil
}

// cleanup is the state of one Cleanup.
type cleanup struct {
	s                    *Store
	ctx                  context.Context
	hi, lo, ns, cutScore string
	total                int
	owned                map[string][]string // owner -> member, token, ...
	corrupt              []string            // keys under the prefix holding no record
}

// shardRead is one shard's next read of its index. offset counts the
// entries at the cutoff's score that a script kept (their exact ATime is
// not before cutoff): they sort after every entry below that score and
// before the unread ones at it, so the next read skips them.
type shardRead struct {
	shard, offset int
	cmd           *redis.StringSliceCmd
}

// shards cleans shards [first, end) until each one's read comes back
// short.
func (c *cleanup) shards(first, end int) error {
	s, ctx := c.s, c.ctx
	active := make([]shardRead, 0, end-first)
	for sh := first; sh < end; sh++ {
		active = append(active, shardRead{shard: sh})
	}
	batch := s.opts.batch
	for len(active) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		pipe := s.client.Pipeline()
		for i := range active {
			r := &active[i]
			r.cmd = pipe.ZRangeByScore(ctx, s.indexKey[r.shard], &redis.ZRangeBy{
				Min: "-inf", Max: c.cutScore, Offset: int64(r.offset), Count: int64(batch),
			})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		next := active[:0]
		for _, r := range active {
			members := r.cmd.Val()
			if len(members) == 0 {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			kept, err := c.clean(r.shard, members)
			if err != nil {
				return err
			}
			if len(members) == batch {
				next = append(next, shardRead{shard: r.shard, offset: r.offset + kept})
			}
		}
		active = next
	}
	return nil
}

// clean runs the cleanup script on members of shard and returns how many
// entries it kept at the cutoff's score.
func (c *cleanup) clean(shard int, members []string) (int, error) {
	s := c.s
	keys := make([]string, 1+len(members))
	args := make([]any, 5+len(members))
	keys[0] = s.indexKey[shard]
	args[0], args[1], args[2], args[3] = c.hi, c.lo, c.ns, c.cutScore
	for j, m := range members {
		keys[1+j] = s.recPrefix[shard] + m
		args[4+j] = m
	}
	args[4+len(members)] = s.channel
	res, err := s.run(c.ctx, cleanScript, keys, args...).Slice()
	if s.cache != nil {
		// This store's own Loads must not see them once Cleanup returns:
		// the script's change message may come later.
		for _, m := range members {
			s.cache.drop(m)
		}
	}
	if err != nil {
		return 0, err
	}
	deleted, _ := res[0].(int64)
	kept, _ := res[1].(int64)
	c.total += int(deleted)
	if corrupt, _ := res[2].([]any); len(corrupt) > 0 {
		for _, k := range corrupt {
			name, _ := k.(string)
			c.corrupt = append(c.corrupt, name)
		}
	}
	for k := 3; k+2 < len(res); k += 3 {
		owner, _ := res[k].(string)
		token, _ := res[k+1].(string)
		member, _ := res[k+2].(string)
		c.owned[owner] = append(c.owned[owner], member, token)
	}
	return int(kept), nil
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
