package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	session "github.com/websession/websession/core"
)

// Sizes of the concurrency checks: enough rounds, with start offsets swept
// across one call's duration, that a check-then-act race shows in every
// run; few enough calls to stay fast against a database.
const (
	raceGoroutines = 8
	casIncrements  = 12
	busyGoroutines = 12
	busyIterations = 12
	sweepRecords   = 32 // idle records per round of Store/Concurrent/CleanupVsWrites
)

// judgeWinners checks the outcome of rounds of concurrent calls of which
// exactly one must succeed, each round on its own key: errs[i][g] is the
// error of goroutine g in round first+i; lose is the sentinel the others
// must get. It returns each round's winner, or -1.
func judgeWinners(first int, op string, errs [][]error, lose error, l *errList) []int {
	winners := make([]int, len(errs))
	for i, round := range errs {
		r, n := first+i+1, len(round)
		winners[i] = -1
		for g, err := range round {
			switch {
			case l.brokenCall(err):
			case err == nil && winners[i] >= 0 && op == "Create":
				l.add("two created", "round %d: %d concurrent Creates of one new key: both #%d and #%d succeeded, want exactly one success and ErrExists for the rest. Create must claim the key in one atomic step (INSERT into a unique key, LoadOrStore, SET NX, O_EXCL), never check that it is free and then insert", r, n, winners[i], g)
			case err == nil && winners[i] >= 0:
				l.add("two updated", "round %d: %d concurrent Updates with Version 1: both #%d and #%d succeeded, want exactly one success and ErrConflict for the rest (a lost update). Update must compare the version and write in one atomic step (UPDATE ... WHERE key = ? AND version = ?, CompareAndSwap), never read the version and then write", r, n, winners[i], g)
			case err == nil:
				winners[i] = g
			case op == "Update" && errors.Is(err, session.ErrNotFound):
				l.add("not found", "round %d: concurrent Update #%d with Version 1 of a record that exists: got %v, want nil or ErrConflict. A version mismatch is ErrConflict; ErrNotFound only when the record is gone (an UPDATE that matched no row must check whether the key exists)", r, g, err)
			case !errors.Is(err, lose):
				l.add(op+" error", "round %d: concurrent %s #%d of one key: got error %v, want nil or an error wrapping %s", r, op, g, err, sentinelName(lose))
			}
		}
		if winners[i] < 0 && !l.stopped() {
			l.add("none won", "round %d: %d concurrent %ss of one key all failed, want exactly one success", r, n, op)
		}
	}
	return winners
}

// expectWinners loads each round's key and checks that it holds its
// winner's record, whole.
func (x *storeT) expectWinners(first int, op string, keys []string, winners []int, w func(g int) want, l *errList) {
	x.t.Helper()
	recs, errs := x.bulkLoad(keys)
	for i, rec := range recs {
		if winners[i] < 0 {
			continue
		}
		if errs[i] != nil {
			l.add("load", "round %d: Load after concurrent %ss: %v", first+i+1, op, errs[i])
		} else if p := x.s.recordProblems(rec, w(winners[i])); len(p) > 0 {
			l.add("not the winner's", "round %d: the record after concurrent %ss is not the winner's (#%d), whole: %s. A refused %s must change nothing", first+i+1, op, winners[i], strings.Join(p, "; "), op)
		}
	}
}

// raceOneKey runs a pair race of op on one new key per round (prep makes
// the keys ready), then one chunk of rounds with raceGoroutines calling
// at once, and checks that exactly one call of each round succeeds.
func (x *storeT) raceOneKey(op string, span time.Duration, prep func(keys []string) bool, do func(ctx context.Context, key string, g int) error, lose error, w func(g int) want) {
	x.t.Helper()
	var l errList
	keysOf := func(first int) []string {
		keys := make([]string, raceChunk)
		for i := range keys {
			keys[i] = x.key(fmt.Sprint("round", first+i))
		}
		return keys
	}
	var keys []string
	var errs [][]error
	last := 0
	x.pairRace(span, func(first int) bool {
		keys, errs, last = keysOf(first), make([][]error, raceChunk), first+raceChunk
		for i := range errs {
			errs[i] = make([]error, 2)
		}
		return prep(keys)
	}, func(c *caller, i int) {
		k := keys[i]
		errs[i][c.g] = c.call(desc(op, k), func(ctx context.Context) error { return do(ctx, k, c.g) })
	}, func(first int) bool {
		winners := judgeWinners(first, op, errs, lose, &l)
		if l.empty() {
			x.expectWinners(first, op, keys, winners, w, &l)
		}
		return l.empty()
	})
	if l.empty() {
		keys, errs = keysOf(last), make([][]error, raceChunk)
		for i := range errs {
			errs[i] = make([]error, raceGoroutines)
		}
		if prep(keys) {
			x.rounds(raceGoroutines, raceChunk, nil, func(c *caller, i int) {
				k := keys[i]
				errs[i][c.g] = c.call(desc(op, k), func(ctx context.Context) error { return do(ctx, k, c.g) })
			})
			winners := judgeWinners(last, op, errs, lose, &l)
			if l.empty() {
				x.expectWinners(last, op, keys, winners, w, &l)
			}
		}
	}
	x.report(&l)
}

func checkConcurrentCreate(f *fixture) {
	x := storeFixture(f)
	measured := 0
	span := x.callSpan(func(c *caller) error {
		measured++
		k := x.key(fmt.Sprint("measure", measured))
		return c.call(desc("Create", k), func(ctx context.Context) error {
			return x.st.Create(ctx, k, session.Record{Data: []byte("measure"), ATime: timeAt(0), Created: timeAt(0)})
		})
	})
	x.raceOneKey("Create", span, func([]string) bool { return true }, func(ctx context.Context, k string, g int) error {
		return x.st.Create(ctx, k, session.Record{Data: []byte(fmt.Sprint("creator ", g)), ATime: timeAt(time.Duration(g)), Created: timeAt(0)})
	}, session.ErrExists, func(g int) want {
		return want{data: []byte(fmt.Sprint("creator ", g)), atime: timeAt(time.Duration(g)), created: timeAt(0), version: 1}
	})
}

// updateSpan measures one Update, to scale the offsets of a race.
func (x *storeT) updateSpan() time.Duration {
	x.t.Helper()
	probe := x.key("measure update")
	x.mustCreate(x.st, probe, want{data: []byte("measure"), atime: timeAt(0), created: timeAt(0)})
	version := uint64(1)
	return x.callSpan(func(c *caller) error {
		err := c.call(desc("Update", probe), func(ctx context.Context) error {
			return x.st.Update(ctx, probe, session.Record{Data: []byte("measure"), ATime: timeAt(0), Version: version})
		})
		version++
		return err
	})
}

func checkConcurrentUpdate(f *fixture) {
	x := storeFixture(f)
	x.raceOneKey("Update", x.updateSpan(), func(keys []string) bool {
		return x.bulkCreate(keys, func(int) want { return want{data: []byte("start"), atime: timeAt(0), created: timeAt(0)} })
	}, func(ctx context.Context, k string, g int) error {
		return x.st.Update(ctx, k, session.Record{Data: []byte(fmt.Sprint("updater ", g)), ATime: timeAt(time.Minute + time.Duration(g)), Version: 1})
	}, session.ErrConflict, func(g int) want {
		return want{data: []byte(fmt.Sprint("updater ", g)), atime: timeAt(time.Minute + time.Duration(g)), created: timeAt(0), version: 2}
	})
}

// checkConcurrentCASCounter increments a counter from many goroutines with
// Load and Update-or-retry, the manager's way: no increment may be lost.
func checkConcurrentCASCounter(f *fixture) {
	x := storeFixture(f)
	k := x.key("counter")
	x.mustCreate(x.st, k, want{data: []byte("0"), atime: timeAt(0), created: timeAt(0)})
	var l errList
	x.race(raceGoroutines, nil, func(c *caller) {
		for range casIncrements {
			for attempt := 0; ; attempt++ {
				if attempt == 1000 {
					l.add("starved", "goroutine %d: no Update succeeded in 1000 attempts of Load and Update with the Version just loaded", c.g)
					return
				}
				var rec session.Record
				err := c.call(desc("Load", k), func(ctx context.Context) error {
					var err error
					rec, err = x.st.Load(ctx, k)
					return err
				})
				if l.brokenCall(err) {
					return
				}
				if err != nil {
					l.add("load", "goroutine %d: Load of the counter: %v", c.g, err)
					return
				}
				n, perr := strconv.Atoi(string(rec.Data))
				if perr != nil {
					l.add("garbage", "goroutine %d: Load returned Data %q, not a number written by this test", c.g, rec.Data)
					return
				}
				err = c.call(desc("Update", k), func(ctx context.Context) error {
					return x.st.Update(ctx, k, session.Record{Data: []byte(strconv.Itoa(n + 1)), ATime: timeAt(time.Second), Version: rec.Version})
				})
				if l.brokenCall(err) {
					return
				}
				if err == nil {
					break
				}
				if !errors.Is(err, session.ErrConflict) {
					l.add("update", "goroutine %d: Update with the Version just loaded: got %v, want nil or ErrConflict", c.g, err)
					return
				}
			}
		}
	})
	x.report(&l)
	total := raceGoroutines * casIncrements
	x.expect(x.st, k, want{data: []byte(strconv.Itoa(total)), atime: timeAt(time.Second), created: timeAt(0), version: uint64(total + 1)}, fmt.Sprintf("counter after %d goroutines each added %d with Load and Update-or-retry (no increment may be lost; each success bumps Version once)", raceGoroutines, casIncrements))
}

// checkConcurrentDistinctKeys runs every call from many goroutines on
// their own keys, with Cleanups in between; under -race it finds data
// races in the driver.
func checkConcurrentDistinctKeys(f *fixture) {
	x := storeFixture(f)
	var l errList
	ancient := timeAt(-24 * 365 * time.Hour)
	var working atomic.Int32
	working.Store(busyGoroutines)
	x.race(busyGoroutines+1, nil, func(c *caller) {
		if c.g == busyGoroutines {
			// Cleanups while the others work, and one after they are done.
			for last := false; !last; {
				last = working.Load() == 0
				var n int
				err := c.call("Cleanup("+fmtTime(ancient)+")", func(ctx context.Context) error {
					var err error
					n, err = x.st.Cleanup(ctx, ancient)
					return err
				})
				if l.brokenCall(err) {
					return
				}
				if err != nil || n != 0 {
					l.add("cleanup", "Cleanup with a cutoff before every record, during other calls: got (%d, %v), want (0, nil)", n, err)
					return
				}
			}
			return
		}
		defer working.Add(-1)
		g := c.g
		k := x.key(fmt.Sprint("g", g))
		do := func(op string, fn func(ctx context.Context) error) bool {
			err := c.call(desc(op, k), fn)
			if l.brokenCall(err) {
				return false
			}
			if err != nil {
				l.add(op, "goroutine %d: %s of its own key: %v", g, op, err)
				return false
			}
			return true
		}
		created := timeAt(time.Duration(g) * time.Second)
		if !do("Create", func(ctx context.Context) error {
			return x.st.Create(ctx, k, session.Record{Data: []byte("0"), ATime: created, Created: created})
		}) {
			return
		}
		version := uint64(1)
		for i := range busyIterations {
			data := []byte(fmt.Sprintf("g%d i%d", g, i))
			at := created.Add(time.Duration(i+1) * time.Minute)
			if !do("Update", func(ctx context.Context) error {
				return x.st.Update(ctx, k, session.Record{Data: data, ATime: at, Version: version})
			}) {
				return
			}
			version++
			if !do("Touch", func(ctx context.Context) error { return x.st.Touch(ctx, k, at.Add(time.Second)) }) {
				return
			}
			var rec session.Record
			if !do("Load", func(ctx context.Context) error {
				var err error
				rec, err = x.st.Load(ctx, k)
				return err
			}) {
				return
			}
			if p := x.s.recordProblems(rec, want{data: data, atime: at.Add(time.Second), created: created, version: version}); len(p) > 0 {
				l.add("own record", "goroutine %d, iteration %d: own key's record after Update and Touch, with other goroutines busy on their own keys: %s", g, i, strings.Join(p, "; "))
				return
			}
			if i%4 == 3 {
				if !do("Delete", func(ctx context.Context) error { return x.st.Delete(ctx, k) }) {
					return
				}
				created = at.Add(2 * time.Second)
				if !do("Create", func(ctx context.Context) error {
					return x.st.Create(ctx, k, session.Record{Data: []byte("again"), ATime: created, Created: created})
				}) {
					return
				}
				version = 1
			}
		}
	})
	x.report(&l)
}

// touchSpan measures one Touch, to scale the offsets of the Touch races.
func (x *storeT) touchSpan() time.Duration {
	x.t.Helper()
	probe := x.key("measure")
	x.mustCreate(x.st, probe, want{data: []byte("measure"), atime: timeAt(0), created: timeAt(0)})
	return x.callSpan(func(c *caller) error {
		return c.call(desc("Touch", probe), func(ctx context.Context) error { return x.st.Touch(ctx, probe, timeAt(time.Minute)) })
	})
}

// touchesPerRound is how many writes the other goroutine of a Touch race
// makes in a round, while the toucher touches the same record over and
// over: each write meets several Touches, at every phase of them.
const touchesPerRound = 4

// toucher touches key on goroutine c until done is set, and at least
// touchesPerRound times; it returns the first error other than
// ErrNotFound.
func (x *storeT) toucher(c *caller, key string, at time.Time, done *atomic.Bool) error {
	for n := 0; n < touchesPerRound || !done.Load(); n++ {
		err := c.call(desc("Touch", key), func(ctx context.Context) error { return x.st.Touch(ctx, key, at) })
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			return err
		}
	}
	return nil
}

// checkConcurrentTouchVsDelete touches a record over and over while
// another goroutine deletes it and creates it again, round after round.
// After a Delete returns nothing brings the record back: the Create that
// follows succeeds, and the record ends deleted. A Touch that reads the
// record and writes it back whole brings a killed session back to life.
func checkConcurrentTouchVsDelete(f *fixture) {
	x := storeFixture(f)
	span := x.touchSpan() * 3 / 2 // a Delete takes no longer than a Touch, give or take
	var l errList
	var keys []string
	var done []atomic.Bool
	delErrs, touchErrs := make([]error, raceChunk), make([]error, raceChunk)
	x.pairRace(span, func(first int) bool {
		keys, done = make([]string, raceChunk), make([]atomic.Bool, raceChunk)
		for i := range keys {
			keys[i] = x.key(fmt.Sprint("round", first+i))
		}
		return x.bulkCreate(keys, func(int) want { return want{data: []byte("life 0"), atime: timeAt(0), created: timeAt(0)} })
	}, func(c *caller, i int) {
		k := keys[i]
		if c.g == 1 {
			touchErrs[i] = x.toucher(c, k, timeAt(time.Hour), &done[i])
			return
		}
		defer done[i].Store(true)
		delErrs[i] = nil
		for j := 1; j <= touchesPerRound; j++ {
			if err := c.call(desc("Delete", k), func(ctx context.Context) error { return x.st.Delete(ctx, k) }); err != nil {
				delErrs[i] = err
				return
			}
			if j == touchesPerRound {
				return
			}
			err := c.call(desc("Create", k), func(ctx context.Context) error {
				return x.st.Create(ctx, k, session.Record{Data: []byte(fmt.Sprint("life ", j)), ATime: timeAt(0), Created: timeAt(0)})
			})
			if err != nil {
				delErrs[i] = fmt.Errorf("Create right after Delete: %w", err)
				return
			}
		}
	}, func(first int) bool {
		for i := range keys {
			x.stop(delErrs[i])
			x.stop(touchErrs[i])
		}
		recs, errs := x.bulkLoad(keys)
		for i := range keys {
			r, delErr, touchErr := first+i+1, delErrs[i], touchErrs[i]
			switch {
			case errors.Is(delErr, session.ErrExists):
				l.add("resurrected", "round %d: Create of a key whose Delete had just returned, with only Touches racing them, got ErrExists: a Touch brought the deleted record back, a killed session alive again. Touch must set ATime in place, only if the record still exists (UPDATE ... SET atime = ? WHERE key = ?, a compare-and-swap), never read the record and write it back whole", r)
			case delErr != nil:
				l.add("delete error", "round %d: Delete or Create of a record Touches were racing: got error %v, want nil", r, delErr)
			}
			if touchErr != nil {
				l.add("touch error", "round %d: Touch racing Deletes of the same record: got error %v, want nil or ErrNotFound", r, touchErr)
			}
			switch err := errs[i]; {
			case err == nil && delErr == nil:
				l.add("resurrected", "round %d: Touches racing Deletes of the same record: after the last Delete returned nil, the record is back (Version %d, Data %q, ATime %s): a killed session brought back to life. Touch must set ATime in place, only if the record still exists (UPDATE ... SET atime = ? WHERE key = ?, a compare-and-swap), never read the record and write it back whole", r, recs[i].Version, recs[i].Data, fmtTime(recs[i].ATime))
			case err != nil && !errors.Is(err, session.ErrNotFound):
				l.add("load error", "round %d: Load after Touches raced a Delete: got error %v, want ErrNotFound", r, err)
			}
		}
		return l.empty()
	})
	x.report(&l)
}

// checkConcurrentTouchVsUpdate touches a record over and over while
// another goroutine updates it, each Update with the Version the one
// before stored, round after round. As Touch never changes the Version,
// every Update succeeds, and the last one's Data and Version stay. A Touch
// that reads the record and writes it back whole undoes Updates.
func checkConcurrentTouchVsUpdate(f *fixture) {
	x := storeFixture(f)
	span := max(x.touchSpan(), x.updateSpan())
	created, touchAt := timeAt(0), timeAt(time.Hour)
	last := fmt.Sprint("update ", touchesPerRound)
	var l errList
	var keys []string
	var done []atomic.Bool
	updErrs, touchErrs := make([]error, raceChunk), make([]error, raceChunk)
	failedAt := make([]int, raceChunk)
	x.pairRace(span, func(first int) bool {
		keys, done = make([]string, raceChunk), make([]atomic.Bool, raceChunk)
		for i := range keys {
			keys[i] = x.key(fmt.Sprint("round", first+i))
		}
		return x.bulkCreate(keys, func(int) want { return want{data: []byte("update 0"), atime: created, created: created} })
	}, func(c *caller, i int) {
		k := keys[i]
		if c.g == 1 {
			touchErrs[i] = x.toucher(c, k, touchAt, &done[i])
			return
		}
		defer done[i].Store(true)
		updErrs[i] = nil
		for j := 1; j <= touchesPerRound; j++ {
			err := c.call(desc("Update", k), func(ctx context.Context) error {
				return x.st.Update(ctx, k, session.Record{Data: []byte(fmt.Sprint("update ", j)), ATime: timeAt(time.Duration(j) * time.Minute), Version: uint64(j)})
			})
			if err != nil {
				updErrs[i], failedAt[i] = err, j
				return
			}
		}
	}, func(first int) bool {
		for i := range keys {
			x.stop(updErrs[i])
			x.stop(touchErrs[i])
		}
		recs, errs := x.bulkLoad(keys)
		for i := range keys {
			r, rec := first+i+1, recs[i]
			switch {
			case errors.Is(updErrs[i], session.ErrConflict):
				l.add("undone", "round %d: Update #%d with the Version %d that the Update before it stored got ErrConflict, though only Touches ran on the record meanwhile: a Touch wrote back an older version of the record, undoing an Update (or Touch changed the Version). Touch must set ATime in place (UPDATE ... SET atime = ? WHERE key = ?, a compare-and-swap), never read the record and write it back whole", r, failedAt[i], failedAt[i])
			case updErrs[i] != nil:
				l.add("update error", "round %d: Update with the stored Version, racing Touches: got %v, want nil", r, updErrs[i])
			case touchErrs[i] != nil:
				l.add("touch error", "round %d: Touch racing Updates of the same record: got %v, want nil", r, touchErrs[i])
			case errs[i] != nil:
				l.add("load error", "round %d: Load after Touches raced Updates: got %v, want the record", r, errs[i])
			case string(rec.Data) != last || rec.Version != touchesPerRound+1:
				l.add("undone", "round %d: after Touches raced %d Updates of one record, it holds Data %q at Version %d, want the last Update's %q at Version %d: a Touch undid an Update. Touch must set ATime in place (UPDATE ... SET atime = ? WHERE key = ?, a compare-and-swap), never read the record and write it back whole", r, touchesPerRound, rec.Data, rec.Version, last, touchesPerRound+1)
			}
		}
		return l.empty()
	})
	x.report(&l)
}

// checkConcurrentCleanupVsWrites runs Cleanup while another goroutine
// Touches or Updates each of the very records it is meant to delete,
// round after round, the Cleanup starting at another point of the
// writer's pass each time. A record a write reached (nil) was live from
// then on and must survive; one Cleanup reached first is gone, and the
// write to it gets ErrNotFound. A Cleanup that selects idle keys and then
// deletes them without checking again kills sessions that were just used.
func checkConcurrentCleanupVsWrites(f *fixture) {
	x := storeFixture(f)
	cutoff := x.s.align(timeAt(24 * time.Hour))
	alive := cutoff.Add(time.Hour)
	probe := x.key("measure")
	x.mustCreate(x.st, probe, want{data: []byte("measure"), atime: alive, created: alive})
	span := x.callSpan(func(c *caller) error {
		return c.call(desc("Touch", probe), func(ctx context.Context) error { return x.st.Touch(ctx, probe, alive) })
	})
	pass := span * sweepRecords // the writer's pass over the records
	idleAt := func(i int) time.Time { return cutoff.Add(-time.Hour - time.Duration(i)*time.Second) }
	var l errList
	t0 := time.Now()
	overlapped := 0
	for round := 1; round <= maxCleanupRounds; round++ {
		ok, both := x.cleanupRound(round, cutoff, alive, idleAt, pass, &l)
		if !ok {
			break
		}
		if both {
			overlapped++
		}
		if round >= minCleanupRounds && (overlapped >= cleanupOverlaps || time.Since(t0) > raceBudget) {
			break
		}
	}
	x.report(&l)
}

// Effort of Store/Concurrent/CleanupVsWrites: rounds until cleanupOverlaps
// of them had the Cleanup run while the writer wrote (measured), at the
// start offsets of cleanupSteps, bounded like the pair races.
const (
	minCleanupRounds = 16
	maxCleanupRounds = 1024
	cleanupOverlaps  = 64
	cleanupSteps     = 31 // start offsets of the Cleanup over the writer's pass
)

// cleanupRound is one round of Store/Concurrent/CleanupVsWrites. It
// returns whether to go on, and whether the Cleanup and the writes
// overlapped in time.
func (x *storeT) cleanupRound(round int, cutoff, alive time.Time, idleAt func(int) time.Time, pass time.Duration, l *errList) (ok, overlapped bool) {
	x.t.Helper()
	keys := make([]string, sweepRecords)
	for i := range keys {
		keys[i] = x.key(fmt.Sprintf("round %d record %d", round, i))
	}
	if !x.bulkCreate(keys, func(i int) want {
		return want{data: []byte(fmt.Sprint("idle ", i)), atime: idleAt(i), created: idleAt(i)}
	}) {
		return false, false
	}
	var (
		cleanFrom, cleanTo time.Time // when the Cleanup ran
		writeFrom, writeTo time.Time // when the writer wrote
		deleted            int
		cleanErr           error
		written            = make([]bool, sweepRecords) // a write returned nil
		writeCalls         = make([]string, sweepRecords)
	)
	// The Cleanup starts at another point of the writer's pass each round.
	offset := func(g int) time.Duration {
		if g == 0 {
			return pass * time.Duration(round%cleanupSteps) / cleanupSteps
		}
		return 0
	}
	x.race(2, offset, func(c *caller) {
		if c.g == 0 {
			cleanErr = c.call("Cleanup("+fmtTime(cutoff)+")", func(ctx context.Context) error {
				var err error
				deleted, err = x.st.Cleanup(ctx, cutoff)
				return err
			})
			cleanFrom, cleanTo = c.began, c.began.Add(c.took)
			return
		}
		defer func() { writeTo = time.Now() }()
		for i, k := range keys {
			var err error
			if i%2 == 0 {
				writeCalls[i] = "Touch"
				err = c.call(desc("Touch", k), func(ctx context.Context) error { return x.st.Touch(ctx, k, alive) })
			} else {
				writeCalls[i] = "Update"
				err = c.call(desc("Update", k), func(ctx context.Context) error {
					return x.st.Update(ctx, k, session.Record{Data: []byte(fmt.Sprint("updated ", i)), ATime: alive, Version: 1})
				})
			}
			if i == 0 {
				writeFrom = c.began
			}
			switch {
			case l.brokenCall(err):
				return
			case err == nil:
				written[i] = true
			case !errors.Is(err, session.ErrNotFound):
				l.add("write error", "round %d: %s of a record while Cleanup ran: got %v, want nil or ErrNotFound", round, writeCalls[i], err)
			}
		}
	})
	x.stop(cleanErr)
	if cleanErr != nil {
		l.add("cleanup error", "round %d: Cleanup while records were written: got error %v", round, cleanErr)
		return false, false
	}
	recs, errs := x.bulkLoad(keys)
	missing := 0
	for i, err := range errs {
		exists := err == nil
		if !exists && !errors.Is(err, session.ErrNotFound) {
			l.add("load error", "round %d: Load after the race: got error %v", round, err)
			continue
		}
		if !exists {
			missing++
		}
		switch {
		case written[i] && !exists:
			l.add("deleted live", "round %d: a record was idle when Cleanup(%s) started, and %s of it returned nil while the Cleanup ran (so it was live from then on), yet after the Cleanup the record is gone: Cleanup deleted a record that was no longer idle, a live session killed. Cleanup must decide and delete in one step (DELETE ... WHERE atime < ?, CompareAndDelete), or check ATime again as it deletes each key it selected earlier", round, fmtTime(cutoff), writeCalls[i])
		case !written[i] && exists:
			l.add("kept idle", "round %d: a record idle before the cutoff, which no write reached before Cleanup(%s), survived it (ATime %s): Cleanup must delete every record idle when it runs", round, fmtTime(cutoff), fmtTime(recs[i].ATime))
		case exists:
			w := want{data: []byte(fmt.Sprint("idle ", i)), atime: alive, created: idleAt(i), version: 1}
			if writeCalls[i] == "Update" {
				w.data, w.version = []byte(fmt.Sprint("updated ", i)), 2
			}
			if p := x.s.recordProblems(recs[i], w); len(p) > 0 {
				l.add("survivor", "round %d: a record written during Cleanup, after it: %s", round, strings.Join(p, "; "))
			}
		}
	}
	if deleted != missing {
		l.add("count", "round %d: Cleanup racing writes returned %d, but %d of its %d idle records are gone: it must return how many it deleted", round, deleted, missing, sweepRecords)
	}
	return l.empty(), cleanFrom.Before(writeTo) && writeFrom.Before(cleanTo)
}

// --- Context -----------------------------------------------------------

// ctxCheck returns the check that op, given a context that is cancelled
// (or past its deadline) before the call, fails with an error wrapping
// context.Canceled (or context.DeadlineExceeded).
func ctxCheck(op string, deadline bool) func(f *fixture) {
	return func(f *fixture) {
		x := storeFixture(f)
		k := x.key("k")
		x.mustCreate(x.st, k, want{data: []byte("x"), atime: timeAt(0), created: timeAt(0)})
		var ctx context.Context
		var cancel context.CancelFunc
		target, how := context.Canceled, "a cancelled context"
		if deadline {
			ctx, cancel = context.WithTimeout(context.Background(), -time.Second)
			target, how = context.DeadlineExceeded, "a context past its deadline"
		} else {
			ctx, cancel = context.WithCancel(context.Background())
			cancel()
		}
		defer cancel()
		var err error
		switch op {
		case "Load":
			_, err = call(x.s, ctx, desc(op, k), func(ctx context.Context) (session.Record, error) { return x.st.Load(ctx, k) })
		case "Create":
			err = ctxCall(x.s, ctx, desc(op, k), func(ctx context.Context) error {
				return x.st.Create(ctx, x.key("new"), session.Record{Data: []byte("x"), ATime: timeAt(0), Created: timeAt(0)})
			})
		case "Update":
			err = ctxCall(x.s, ctx, desc(op, k), func(ctx context.Context) error {
				return x.st.Update(ctx, k, session.Record{Data: []byte("y"), ATime: timeAt(time.Minute), Version: 1})
			})
		case "Touch":
			err = ctxCall(x.s, ctx, desc(op, k), func(ctx context.Context) error { return x.st.Touch(ctx, k, timeAt(time.Minute)) })
		case "Delete":
			err = ctxCall(x.s, ctx, desc(op, k), func(ctx context.Context) error { return x.st.Delete(ctx, k) })
		case "Cleanup":
			_, err = call(x.s, ctx, "Cleanup("+fmtTime(timeAt(time.Hour))+")", func(ctx context.Context) (int, error) { return x.st.Cleanup(ctx, timeAt(time.Hour)) })
		default:
			panic("conformance: unknown op " + op)
		}
		x.stop(err)
		x.expectErr(err, target, fmt.Sprintf("%s with %s", op, how))
	}
}

func ctxCall(s *suite, ctx context.Context, op string, fn func(ctx context.Context) error) error {
	_, err := call(s, ctx, op, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}
