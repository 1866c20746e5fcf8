package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	session "github.com/websession/websession/core"
)

// Sizes of the concurrency checks: enough goroutines and rounds that a
// check-then-act race shows, few enough to stay fast against a database.
const (
	raceGoroutines = 8
	raceRounds     = 12
	casIncrements  = 12
	busyGoroutines = 12
	busyIterations = 12
)

// errList collects failures from many goroutines; the test goroutine
// reports them.
type errList struct {
	mu     sync.Mutex
	msgs   []string
	broken error
}

func (l *errList) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, fmt.Sprintf(format, args...))
}

// brokenCall records a hung or panicking call; it reports whether err was
// one, so the goroutine can stop.
func (l *errList) brokenCall(err error) bool {
	if !isBroken(err) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken == nil {
		l.broken = err
	}
	return true
}

func (x *storeT) report(l *errList) {
	x.t.Helper()
	if l.broken != nil {
		x.t.Fatal(l.broken)
	}
	const most = 10
	for i, m := range l.msgs {
		if i == most {
			x.errorf("... and %d more", len(l.msgs)-most)
			break
		}
		x.errorf("%s", m)
	}
}

// raceCall is a store call for use off the test goroutine.
func raceCall(s *suite, op string, fn func(ctx context.Context) error) error {
	_, err := call(s, context.Background(), op, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, fn(ctx)
	})
	return err
}

// together runs fn(i) for i in [0, n) on n goroutines released at once.
func together(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

func checkConcurrentCreate(f *fixture) {
	x := storeFixture(f)
	for round := range raceRounds {
		k := x.key(fmt.Sprint("round", round))
		errs := make([]error, raceGoroutines)
		together(raceGoroutines, func(i int) {
			errs[i] = raceCall(x.s, "Create", func(ctx context.Context) error {
				return x.st.Create(ctx, k, session.Record{Data: []byte(fmt.Sprint("creator ", i)), ATime: timeAt(time.Duration(i)), Created: timeAt(0)})
			})
		})
		winner := -1
		for i, err := range errs {
			x.stop(err)
			switch {
			case err == nil && winner >= 0:
				x.fatalf("round %d: %d concurrent Creates of one key: both #%d and #%d succeeded, want exactly one success and ErrExists for the rest", round, raceGoroutines, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, session.ErrExists):
				x.errorf("round %d: concurrent Create #%d: got error %v, want nil or an error wrapping session.ErrExists", round, i, err)
			}
		}
		if winner < 0 {
			x.fatalf("round %d: %d concurrent Creates of one new key all failed, want exactly one success", round, raceGoroutines)
		}
		x.expect(x.st, k, want{data: []byte(fmt.Sprint("creator ", winner)), atime: timeAt(time.Duration(winner)), created: timeAt(0), version: 1}, fmt.Sprintf("round %d: record after concurrent Creates (the winner's, whole)", round))
	}
}

func checkConcurrentUpdate(f *fixture) {
	x := storeFixture(f)
	for round := range raceRounds {
		k := x.key(fmt.Sprint("round", round))
		x.mustCreate(x.st, k, want{data: []byte("start"), atime: timeAt(0), created: timeAt(0)})
		errs := make([]error, raceGoroutines)
		together(raceGoroutines, func(i int) {
			errs[i] = raceCall(x.s, "Update", func(ctx context.Context) error {
				return x.st.Update(ctx, k, session.Record{Data: []byte(fmt.Sprint("updater ", i)), ATime: timeAt(time.Minute + time.Duration(i)), Version: 1})
			})
		})
		winner := -1
		for i, err := range errs {
			x.stop(err)
			switch {
			case err == nil && winner >= 0:
				x.fatalf("round %d: %d concurrent Updates with Version 1: both #%d and #%d succeeded, want exactly one success and ErrConflict for the rest (a lost update)", round, raceGoroutines, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, session.ErrConflict):
				x.errorf("round %d: concurrent Update #%d: got error %v, want nil or an error wrapping session.ErrConflict", round, i, err)
			}
		}
		if winner < 0 {
			x.fatalf("round %d: %d concurrent Updates with the stored Version all failed, want exactly one success", round, raceGoroutines)
		}
		x.expect(x.st, k, want{data: []byte(fmt.Sprint("updater ", winner)), atime: timeAt(time.Minute + time.Duration(winner)), created: timeAt(0), version: 2}, fmt.Sprintf("round %d: record after concurrent Updates (the winner's, whole, at Version 2)", round))
	}
}

// checkConcurrentCASCounter increments a counter from many goroutines with
// Load and Update-or-retry, the manager's way: no increment may be lost.
func checkConcurrentCASCounter(f *fixture) {
	x := storeFixture(f)
	k := x.key("counter")
	x.mustCreate(x.st, k, want{data: []byte("0"), atime: timeAt(0), created: timeAt(0)})
	var l errList
	together(raceGoroutines, func(g int) {
		for range casIncrements {
			for attempt := 0; ; attempt++ {
				if attempt == 1000 {
					l.add("goroutine %d: no Update succeeded in 1000 attempts", g)
					return
				}
				var rec session.Record
				err := raceCall(x.s, "Load", func(ctx context.Context) error {
					var err error
					rec, err = x.st.Load(ctx, k)
					return err
				})
				if l.brokenCall(err) {
					return
				}
				if err != nil {
					l.add("goroutine %d: Load: %v", g, err)
					return
				}
				n, perr := strconv.Atoi(string(rec.Data))
				if perr != nil {
					l.add("goroutine %d: Load returned Data %q, not a number written by this test", g, rec.Data)
					return
				}
				err = raceCall(x.s, "Update", func(ctx context.Context) error {
					return x.st.Update(ctx, k, session.Record{Data: []byte(strconv.Itoa(n + 1)), ATime: timeAt(time.Second), Version: rec.Version})
				})
				if l.brokenCall(err) {
					return
				}
				if err == nil {
					break
				}
				if !errors.Is(err, session.ErrConflict) {
					l.add("goroutine %d: Update with the Version just loaded: got %v, want nil or ErrConflict", g, err)
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
	stop := make(chan struct{})
	var cleaners sync.WaitGroup
	cleaners.Add(1)
	go func() {
		defer cleaners.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			err := raceCall(x.s, "Cleanup", func(ctx context.Context) error {
				var err error
				n, err = x.st.Cleanup(ctx, ancient)
				return err
			})
			if l.brokenCall(err) {
				return
			}
			if err != nil || n != 0 {
				l.add("Cleanup with a cutoff before every record, during other calls: got (%d, %v), want (0, nil)", n, err)
				return
			}
		}
	}()
	together(busyGoroutines, func(g int) {
		k := x.key(fmt.Sprint("g", g))
		do := func(op string, fn func(ctx context.Context) error) bool {
			err := raceCall(x.s, op, fn)
			if l.brokenCall(err) {
				return false
			}
			if err != nil {
				l.add("goroutine %d: %s of its own key: %v", g, op, err)
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
				l.add("goroutine %d, iteration %d: own key's record after Update and Touch: %s", g, i, strings.Join(p, "; "))
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
	close(stop)
	cleaners.Wait()
	x.report(&l)
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
			_, err = call(x.s, ctx, op, func(ctx context.Context) (session.Record, error) { return x.st.Load(ctx, k) })
		case "Create":
			err = ctxCall(x.s, ctx, op, func(ctx context.Context) error {
				return x.st.Create(ctx, x.key("new"), session.Record{Data: []byte("x"), ATime: timeAt(0), Created: timeAt(0)})
			})
		case "Update":
			err = ctxCall(x.s, ctx, op, func(ctx context.Context) error {
				return x.st.Update(ctx, k, session.Record{Data: []byte("y"), ATime: timeAt(time.Minute), Version: 1})
			})
		case "Touch":
			err = ctxCall(x.s, ctx, op, func(ctx context.Context) error { return x.st.Touch(ctx, k, timeAt(time.Minute)) })
		case "Delete":
			err = ctxCall(x.s, ctx, op, func(ctx context.Context) error { return x.st.Delete(ctx, k) })
		case "Cleanup":
			_, err = call(x.s, ctx, op, func(ctx context.Context) (int, error) { return x.st.Cleanup(ctx, timeAt(time.Hour)) })
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
