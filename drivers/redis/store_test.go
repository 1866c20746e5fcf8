package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	session "github.com/websession/websession/core"
)

func TestOptions(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	bad := map[string]Option{
		"prefix with {":     WithKeyPrefix("app{1}:"),
		"prefix with }":     WithKeyPrefix("app}:"),
		"prefix with space": WithKeyPrefix("my app:"),
		"prefix non-ASCII":  WithKeyPrefix("sessões:"),
		"prefix too long":   WithKeyPrefix(strings.Repeat("p", MaxKeyPrefixLen+1)),
		"zero expiry":       WithExpiry(0),
		"negative expiry":   WithExpiry(-time.Second),
		"batch 0":           WithCleanupBatch(0),
		"batch too large":   WithCleanupBatch(MaxCleanupBatch + 1),
	}
	for name, opt := range bad {
		if s, err := New(ctx, c, opt); err == nil || !strings.HasPrefix(err.Error(), "redis: new: ") {
			t.Errorf("%s: New = %v, %v; want a \"redis: new: \" error", name, s, err)
		}
	}
	for _, good := range []Option{WithKeyPrefix(""), WithKeyPrefix(strings.Repeat("p", MaxKeyPrefixLen)),
		WithExpiry(time.Nanosecond), WithCleanupBatch(1), WithCleanupBatch(MaxCleanupBatch)} {
		if _, err := New(ctx, c, good); err != nil {
			t.Errorf("New with a valid option: %v", err)
		}
	}
	if _, err := New(ctx, nil); err == nil {
		t.Error("New(nil client) succeeded")
	}
}

func TestOpen(t *testing.T) {
	requireRedis(t)
	ctx := testCtx(t)
	if _, err := Open(ctx, "http://127.0.0.1:6379"); err == nil || !strings.HasPrefix(err.Error(), "redis: parse URL: ") {
		t.Errorf("Open of a non-redis URL: %v", err)
	}
	// Nothing listens on port 1: New's PING fails with the dial error.
	_, err := Open(ctx, "redis://127.0.0.1:1/0?dial_timeout=1s&max_retries=-1")
	var opErr interface{ Timeout() bool }
	if err == nil || !strings.HasPrefix(err.Error(), "redis: ping: ") || !errors.As(err, &opErr) {
		t.Errorf("Open of an unreachable server: %v, want \"redis: ping: \" wrapping the dial error", err)
	}

	s, err := Open(ctx, testURL(), WithKeyPrefix(uniquePrefix(t, newClient(t))))
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "k", rec("x", t0))
	if got := mustLoad(t, s, "k"); string(got.Data) != "x" {
		t.Fatalf("Load = %q", got.Data)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Open's client is closed by Close.
	if err := s.Client().Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Ping on the client of a closed Open store: %v, want redis.ErrClosed", err)
	}
}

func TestCloseLeavesCallersClient(t *testing.T) {
	c := newClient(t)
	s := testStore(t, c)
	ctx := testCtx(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("the caller's client after the store's Close: %v", err)
	}
	calls := map[string]error{}
	_, calls["Load"] = s.Load(ctx, "k")
	calls["Create"] = s.Create(ctx, "k", rec("x", t0))
	calls["Update"] = s.Update(ctx, "k", rec("x", t0))
	calls["Touch"] = s.Touch(ctx, "k", t0)
	calls["Delete"] = s.Delete(ctx, "k")
	_, calls["Cleanup"] = s.Cleanup(ctx, t0)
	_, calls["LoadOwned"] = s.LoadOwned(ctx, "o")
	for op, err := range calls {
		if !errors.Is(err, session.ErrClosed) || !strings.HasPrefix(err.Error(), "redis: ") {
			t.Errorf("%s after Close: %v, want \"redis: \" wrapping session.ErrClosed", op, err)
		}
	}
}

// TestKeyLayout checks the keys a record leaves in Redis, and that a
// record and its shard's index share a hash slot.
func TestKeyLayout(t *testing.T) {
	cl := testCluster(t).client(t)
	s := testStore(t, cl)
	ctx := testCtx(t)
	p := s.KeyPrefix()
	for i := range 50 {
		key := fmt.Sprintf("key%d", i)
		mustCreate(t, s, key, rec("x", t0))
		sh := shardOf(key)
		rk := p + "r:{" + strconv.Itoa(sh) + "}:" + key
		ik := p + "a:{" + strconv.Itoa(sh) + "}"
		if n, err := cl.Exists(ctx, rk).Result(); err != nil || n != 1 {
			t.Fatalf("record key %s: exists %d, %v", rk, n, err)
		}
		if _, err := cl.ZScore(ctx, ik, key).Result(); err != nil {
			t.Fatalf("index %s has no entry %s: %v", ik, key, err)
		}
		rs, err1 := cl.ClusterKeySlot(ctx, rk).Result()
		is, err2 := cl.ClusterKeySlot(ctx, ik).Result()
		if err1 != nil || err2 != nil || rs != is {
			t.Fatalf("record %s in slot %d (%v), its index %s in slot %d (%v)", rk, rs, err1, ik, is, err2)
		}
	}
}

func TestInvalidInputWritesNothing(t *testing.T) {
	c := newClient(t)
	s := testStore(t, c)
	ctx := testCtx(t)
	for _, key := range []string{"", "a b", "a:b", "{x}", strings.Repeat("k", session.MaxKeyLen+1), "é"} {
		if _, err := s.Load(ctx, key); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Load(%q): %v", key, err)
		}
		if err := s.Create(ctx, key, rec("x", t0)); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Create(%q): %v", key, err)
		}
		if _, err := s.LoadOwned(ctx, key); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("LoadOwned(%q): %v", key, err)
		}
		r := rec("x", t0)
		r.Owner = key
		if key != "" {
			if err := s.Create(ctx, "k", r); !errors.Is(err, session.ErrInvalidKey) {
				t.Errorf("Create with owner %q: %v", key, err)
			}
		}
	}
	s.maxData = 10
	if err := s.Create(ctx, "big", rec("0123456789a", t0)); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("Create of 11 bytes over a 10-byte limit: %v", err)
	}
	mustCreate(t, s, "fits", rec("0123456789", t0))
	r := mustLoad(t, s, "fits")
	r.Data = []byte("0123456789a")
	if err := s.Update(ctx, "fits", r); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("Update of 11 bytes over a 10-byte limit: %v", err)
	}
	if got := mustLoad(t, s, "fits"); string(got.Data) != "0123456789" || got.Version != 1 {
		t.Errorf("after refused Update: %q v%d", got.Data, got.Version)
	}
	if n, err := c.Exists(ctx, s.recPrefix[shardOf("k")]+"k", s.recPrefix[shardOf("big")]+"big").Result(); err != nil || n != 0 {
		t.Errorf("refused writes left %d keys (%v)", n, err)
	}
}

// TestTimes stores times across the whole range of time.Time, which the
// store keeps exactly; only the index score is clamped.
func TestTimes(t *testing.T) {
	s := testStore(t, newClient(t))
	ctx := testCtx(t)
	times := []time.Time{
		{},
		time.Unix(0, 0),
		time.Unix(-1, 999999999),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1600, 2, 29, 23, 59, 59, 999999999, time.FixedZone("", 14*3600)),
		t0,
		time.Date(2262, 4, 11, 23, 47, 16, 854775808, time.UTC), // past UnixNano's range
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(200000000, 12, 4, 15, 30, 7, 0, time.UTC),
	}
	for i, at := range times {
		key := fmt.Sprintf("t%d", i)
		r := rec("x", at)
		r.Created = at.Add(-time.Nanosecond)
		mustCreate(t, s, key, r)
		got := mustLoad(t, s, key)
		if !got.ATime.Equal(at) || !got.Created.Equal(r.Created) {
			t.Errorf("stored %v / %v, loaded %v / %v", at, r.Created, got.ATime, got.Created)
		}
		if err := s.Touch(ctx, key, at.Add(time.Nanosecond)); err != nil {
			t.Fatal(err)
		}
		if got := mustLoad(t, s, key); !got.ATime.Equal(at.Add(time.Nanosecond)) {
			t.Errorf("touched to %v, loaded %v", at.Add(time.Nanosecond), got.ATime)
		}
	}
	// Cleanup decides on exact times even where scores are clamped: a
	// cutoff at a stored time keeps it, one 1ns later deletes it.
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	s = testStore(t, s.client)
	for i, at := range times {
		mustCreate(t, s, fmt.Sprintf("c%d", i), rec("x", at))
	}
	for i, at := range times {
		key := fmt.Sprintf("c%d", i)
		if n, err := s.Cleanup(ctx, at); err != nil || n != 0 {
			t.Fatalf("Cleanup(%v) = %d, %v; want 0", at, n, err)
		}
		mustLoad(t, s, key)
		if n, err := s.Cleanup(ctx, at.Add(time.Nanosecond)); err != nil || n != 1 {
			t.Fatalf("Cleanup(%v + 1ns) = %d, %v; want 1", at, n, err)
		}
		mustMissing(t, s, key)
	}
}

// TestCleanupBoundaryAndBatches fills one shard with records in the
// cutoff's microsecond, on both sides of the cutoff, interleaved, many
// more than a batch, plus older ones, so that Cleanup pages through kept
// entries at the cutoff's score.
func TestCleanupBoundaryAndBatches(t *testing.T) {
	eachTopology(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		cutoff := t0.Truncate(time.Microsecond).Add(500 * time.Nanosecond)
		keys := keysInShard(7, 120, "b")
		want := map[string]bool{} // key -> deleted
		for i, k := range keys {
			var at time.Time
			switch i % 3 {
			case 0:
				at = cutoff.Add(-time.Duration(1+i) * time.Nanosecond) // same µs, before
			case 1:
				at = cutoff.Add(time.Duration(i%400) * time.Nanosecond) // same µs, at or after
			case 2:
				at = cutoff.Add(-time.Duration(i) * time.Hour) // long before
			}
			mustCreate(t, s, k, rec(k, at))
			want[k] = at.Before(cutoff)
		}
		others := keysInShard(8, 30, "o")
		for _, k := range others {
			mustCreate(t, s, k, rec(k, cutoff.Add(-time.Minute)))
		}
		s.opts.batch = 7
		n, err := s.Cleanup(ctx, cutoff)
		deleted := len(others)
		for _, d := range want {
			if d {
				deleted++
			}
		}
		if err != nil || n != deleted {
			t.Fatalf("Cleanup = %d, %v; want %d", n, err, deleted)
		}
		for k, d := range want {
			if d {
				mustMissing(t, s, k)
			} else {
				mustLoad(t, s, k)
			}
		}
		if n, err := s.Cleanup(ctx, cutoff); err != nil || n != 0 {
			t.Fatalf("second Cleanup = %d, %v; want 0", n, err)
		}
		if got, err := s.client.ZCard(ctx, s.indexKey[7]).Result(); err != nil || int(got) != len(keys)-deleted+len(others) {
			t.Fatalf("index holds %d entries (%v), want %d", got, err, len(keys)-deleted+len(others))
		}
	})
}

// TestCleanupRechecksATime runs the cleanup script on a record touched
// after Cleanup chose it: the script reads the ATime itself and keeps it.
func TestCleanupRechecksATime(t *testing.T) {
	eachTopology(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		cutoff := t0
		keys := keysInShard(3, 2, "r")
		mustCreate(t, s, keys[0], rec("a", cutoff.Add(-time.Hour)))
		mustCreate(t, s, keys[1], rec("b", cutoff.Add(-time.Hour)))
		chosen, err := s.client.ZRangeByScore(ctx, s.indexKey[3], &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(score(cutoff), 10)}).Result()
		if err != nil || len(chosen) != 2 {
			t.Fatalf("index read: %v, %v", chosen, err)
		}
		// A request touches the first after the choice.
		if err := s.Touch(ctx, keys[0], cutoff); err != nil {
			t.Fatal(err)
		}
		hi, lo, ns := timeWords(cutoff)
		res, err := cleanScript.Run(ctx, s.client, []string{s.indexKey[3], s.recPrefix[3] + chosen[0], s.recPrefix[3] + chosen[1]},
			hi, lo, ns, score(cutoff), chosen[0], chosen[1]).Slice()
		if err != nil {
			t.Fatal(err)
		}
		if res[0].(int64) != 1 {
			t.Fatalf("script deleted %v, want 1", res[0])
		}
		mustLoad(t, s, keys[0])
		mustMissing(t, s, keys[1])
	})
}

// TestCleanupDropsEntriesOfExpiredRecords: an index entry whose record
// Redis expired is dropped by Cleanup and not counted.
func TestCleanupDropsEntriesOfExpiredRecords(t *testing.T) {
	eachTopology(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		mustCreate(t, s, "gone", rec("x", t0))
		mustCreate(t, s, "old", rec("x", t0))
		sh := shardOf("gone")
		// What Redis's expiry does: the record goes, its entry stays.
		if err := s.client.Unlink(ctx, s.recPrefix[sh]+"gone").Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Cleanup(ctx, t0.Add(time.Nanosecond)); err != nil || n != 1 {
			t.Fatalf("Cleanup = %d, %v; want 1 (the record that was there)", n, err)
		}
		if _, err := s.client.ZScore(ctx, s.indexKey[sh], "gone").Result(); err != redis.Nil {
			t.Fatalf("entry of the expired record: %v, want it gone", err)
		}
	})
}

// TestExpiry checks WithExpiry: each write sets the record's absolute
// expiry from its own ATime, a record whose expiry has passed by Redis's
// clock is gone at once, and writes sweep old records of their shard.
func TestExpiry(t *testing.T) {
	const d = 90 * time.Minute
	eachTopology(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		expiryOf := func(key string) time.Time {
			t.Helper()
			ms, err := s.client.Do(ctx, "PEXPIRETIME", s.recPrefix[shardOf(key)]+key).Int64()
			if err != nil {
				t.Fatal(err)
			}
			return time.UnixMilli(ms)
		}
		wantExpiry := func(key string, at time.Time) {
			t.Helper()
			if got, want := expiryOf(key), at.Add(d).Truncate(time.Millisecond); !got.Equal(want) {
				t.Errorf("%s expires at %v, want ATime+%v = %v", key, got, d, want)
			}
		}
		// Times decades ahead: the store uses the caller's, not Redis's.
		r := rec("x", t0)
		mustCreate(t, s, "k", r)
		wantExpiry("k", t0)
		if err := s.Touch(ctx, "k", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantExpiry("k", t0.Add(time.Minute))
		r = mustLoad(t, s, "k")
		r.ATime = t0.Add(2 * time.Minute)
		if err := s.Update(ctx, "k", r); err != nil {
			t.Fatal(err)
		}
		wantExpiry("k", t0.Add(2*time.Minute))

		// ATime + d already past by Redis's clock: Redis drops it.
		mustCreate(t, s, "stale", rec("x", time.Now().Add(-d-time.Minute)))
		mustMissing(t, s, "stale")

		// The sweep: a write at ATime deletes records of its shard idle
		// for longer than d, a few per write.
		keys := keysInShard(11, 6, "sw")
		for _, k := range keys[:5] {
			mustCreate(t, s, k, rec("x", t0))
		}
		mustCreate(t, s, keys[5], rec("x", t0.Add(d)))
		for _, k := range keys[:5] {
			mustLoad(t, s, k) // idle exactly d: not yet
		}
		if err := s.Touch(ctx, keys[5], t0.Add(d+time.Microsecond)); err != nil {
			t.Fatal(err)
		}
		n, err := s.client.ZCard(ctx, s.indexKey[11]).Result()
		if err != nil || n != 2 {
			t.Fatalf("after one sweeping write the index holds %d (%v), want 2 (four swept)", n, err)
		}
		if err := s.Touch(ctx, keys[5], t0.Add(d+2*time.Microsecond)); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys[:5] {
			mustMissing(t, s, k)
		}
		mustLoad(t, s, keys[5])
	}, WithExpiry(d))
}

func TestCorruptRecords(t *testing.T) {
	c := newClient(t)
	s := testStore(t, c)
	ctx := testCtx(t)
	rk := s.recPrefix[shardOf("bad")] + "bad"
	if err := c.Set(ctx, rk, "not a record", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "bad"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), rk) {
		t.Errorf("Load of a foreign value: %v, want ErrCorrupt naming %s", err, rk)
	}
	r := rec("x", t0)
	r.Version = 1
	for op, err := range map[string]error{
		"Update": s.Update(ctx, "bad", r),
		"Touch":  s.Touch(ctx, "bad", t0),
	} {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), rk) {
			t.Errorf("%s of a foreign value: %v", op, err)
		}
	}
	if got, _ := c.Get(ctx, rk).Result(); got != "not a record" {
		t.Errorf("foreign value overwritten: %q", got)
	}
	if err := s.Create(ctx, "bad", rec("x", t0)); !errors.Is(err, session.ErrExists) {
		t.Errorf("Create over a foreign value: %v", err)
	}
	// Cleanup: a record overwritten by something else, in its index, is
	// left alone and reported; the rest is cleaned.
	mustCreate(t, s, "overwritten", rec("x", t0))
	mustCreate(t, s, "old", rec("x", t0))
	ok := s.recPrefix[shardOf("overwritten")] + "overwritten"
	if err := c.Set(ctx, ok, "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := s.Cleanup(ctx, t0.Add(time.Second))
	if n != 1 || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), ok) {
		t.Errorf("Cleanup over a foreign value = %d, %v; want 1 and ErrCorrupt naming %s", n, err, ok)
	}
	mustMissing(t, s, "old")
	if got, _ := c.Get(ctx, ok).Result(); got != "garbage" {
		t.Errorf("foreign value touched by Cleanup: %q", got)
	}
	if n, err := s.Cleanup(ctx, t0.Add(time.Second)); n != 0 || err != nil {
		t.Errorf("second Cleanup = %d, %v; want 0, nil (the entry was dropped)", n, err)
	}
	// A key of another type: the server's error, reachable with errors.As.
	lk := s.recPrefix[shardOf("list")] + "list"
	if err := c.RPush(ctx, lk, "x").Err(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(ctx, "list")
	var re redis.Error
	if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), "redis: load: WRONGTYPE") {
		t.Errorf("Load of a list: %v, want \"redis: load: WRONGTYPE ...\" wrapping a redis.Error", err)
	}
}

// TestDataAndVersions: byte-exact data of every size class, versions that
// a Lua number could not hold, Created kept by Update.
func TestDataAndVersions(t *testing.T) {
	eachTopology(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		for _, n := range []int{0, 1, 64, 65, 4096, 1 << 20} {
			data := bytes.Repeat([]byte{0, 0xff, 'a', 0x80}, n/4+1)[:n]
			key := fmt.Sprintf("d%d", n)
			mustCreate(t, s, key, session.Record{Data: data, ATime: t0, Created: t0})
			got := mustLoad(t, s, key)
			if !bytes.Equal(got.Data, data) || got.Data == nil {
				t.Fatalf("%d bytes came back as %d bytes (nil: %v)", n, len(got.Data), got.Data == nil)
			}
			got.Data = append(got.Data, 'z')
			got.Created = t0.Add(time.Hour)
			got.ATime = t0.Add(time.Second)
			if err := s.Update(ctx, key, got); err != nil {
				t.Fatal(err)
			}
			got2 := mustLoad(t, s, key)
			if !bytes.Equal(got2.Data, got.Data) || !got2.Created.Equal(t0) || got2.Version != 2 {
				t.Fatalf("after Update: %d bytes, created %v, version %d", len(got2.Data), got2.Created, got2.Version)
			}
		}
		// A version beyond 2^53, which a Lua number would round: the
		// scripts compare the stored bytes.
		mustCreate(t, s, "v", rec("x", t0))
		r := mustLoad(t, s, "v")
		r.Version = 1<<53 + 1
		if err := s.Update(ctx, "v", r); !errors.Is(err, session.ErrConflict) {
			t.Fatalf("Update with version 2^53+1 over version 1: %v", err)
		}
	})
}

func TestRoundTrips(t *testing.T) {
	var rt roundTrips
	o, err := redis.ParseURL(testURL())
	if err != nil {
		t.Fatal(err)
	}
	o.Dialer = rt.dial
	o.PoolSize = 1
	requireRedis(t)
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	s := testStore(t, c)
	ctx := testCtx(t)
	measure := func(what string, want int64, f func() error) {
		t.Helper()
		before := rt.count()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := rt.count() - before; got != want {
			t.Errorf("%s: %d round trips, want %d", what, got, want)
		}
	}
	r := rec("x", t0)
	measure("Create", 1, func() error { return s.Create(ctx, "k", r) })
	measure("Load", 1, func() error { _, err := s.Load(ctx, "k"); return err })
	r.Version = 1
	measure("Update", 1, func() error { return s.Update(ctx, "k", r) })
	measure("Touch", 1, func() error { return s.Touch(ctx, "k", t0) })
	measure("Delete", 1, func() error { return s.Delete(ctx, "k") })
	owned := rec("x", t0)
	owned.Owner = "alice"
	measure("Create with an owner (one node)", 1, func() error { return s.Create(ctx, "o", owned) })
	owned.Version = 1
	measure("Update, same owner", 1, func() error { return s.Update(ctx, "o", owned) })
	measure("Touch of an owned record", 1, func() error { return s.Touch(ctx, "o", t0) })
	measure("Cleanup, nothing to delete", Shards/readGroup, func() error { _, err := s.Cleanup(ctx, t0.Add(-time.Hour)); return err })
	measure("LoadOwned, one session", 2, func() error { _, err := s.LoadOwned(ctx, "alice"); return err })
	measure("Delete of an owned record", 2, func() error { return s.Delete(ctx, "o") })

	// The Cluster protocol, on the same connection.
	m := testStore(t, multiStep{c})
	owned.Version = 0
	measure("Create with an owner (Cluster protocol)", 2, func() error { return m.Create(ctx, "o", owned) })
	owned.Version = 1
	measure("Update, same owner (Cluster protocol)", 1, func() error { return m.Update(ctx, "o", owned) })
	owned.Version, owned.Owner = 2, "bob"
	measure("Update to another owner (Cluster protocol)", 4, func() error { return m.Update(ctx, "o", owned) })
}

// TestStandaloneRestart restarts a private redis-server under a store in
// use: calls fail with an error while it is down, and the same store and
// client work again once it is back, without reopening anything. With
// appendfsync always, nothing acknowledged is lost.
func TestStandaloneRestart(t *testing.T) {
	requireBinaries(t)
	n := &node{port: freePort(), dir: t.TempDir()}
	start := func() {
		t.Helper()
		if err := n.start("--appendonly", "yes", "--appendfsync", "always"); err != nil {
			t.Fatal(err)
		}
	}
	start()
	t.Cleanup(n.kill)
	c := redis.NewClient(&redis.Options{Addr: n.addr(), ContextTimeoutEnabled: true, MaxRetries: 1})
	t.Cleanup(func() { c.Close() })
	s, err := New(testCtx(t), c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for i := range 100 {
		mustCreate(t, s, fmt.Sprintf("k%d", i), rec(strconv.Itoa(i), t0))
	}

	n.kill()
	r := mustLoadErr(t, s, "k1")
	if !strings.HasPrefix(r.Error(), "redis: load: ") {
		t.Errorf("Load with the server down: %v", r)
	}
	if err := s.Create(ctx, "new", rec("x", t0)); err == nil || !strings.HasPrefix(err.Error(), "redis: create: ") {
		t.Errorf("Create with the server down: %v", err)
	}

	start()
	for i := range 100 {
		key := fmt.Sprintf("k%d", i)
		got := mustLoad(t, s, key)
		if string(got.Data) != strconv.Itoa(i) {
			t.Fatalf("%s after the restart: %q", key, got.Data)
		}
		got.Data = []byte("changed")
		if err := s.Update(ctx, key, got); err != nil {
			t.Fatalf("Update of %s after the restart: %v", key, err)
		}
	}
	mustMissing(t, s, "new")
	if n, err := s.Cleanup(ctx, t0.Add(time.Nanosecond)); err != nil || n != 100 {
		t.Fatalf("Cleanup after the restart = %d, %v; want 100", n, err)
	}
}

func mustLoadErr(t *testing.T, s *Store, key string) error {
	t.Helper()
	_, err := s.Load(context.Background(), key)
	if err == nil {
		t.Fatalf("Load(%s) succeeded with the server down", key)
	}
	return err
}
