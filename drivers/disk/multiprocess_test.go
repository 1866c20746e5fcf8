//go:build unix

package disk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// The two-process test: two helper processes, each with several
// goroutines, race on one directory, and the test checks that the
// guarantees of Create, Update, Touch and Delete held across them.
const (
	contenderGoroutines = 3
	contendKeys         = 120
	contendIncrements   = 40 // per goroutine
	contendDeleteKeys   = 60
)

// contender is a helper process; arg is its id (0 or 1). It prints "R"
// when its store is open, waits for a line on stdin so that both start
// together, then:
//   - every goroutine Creates each key c000..: "C <key> <tag>" for a win;
//   - every goroutine Updates each key u000.. (created by the test, at
//     version 1) expecting version 1: "U <key> <tag>" for a win;
//   - every goroutine increments the counter key by compare-and-swap,
//     touching it between increments: "N <count>" when done;
//   - one goroutine of process 0 deletes each key x000.. while one of
//     process 1 updates and touches it until it is gone.
func contender(dir, arg string) error {
	id, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	s, err := New(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	var outMu sync.Mutex
	emit := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	emit("R")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, contenderGoroutines+1)
	for g := range contenderGoroutines {
		tag := fmt.Sprintf("p%d-g%d", id, g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := contend(ctx, s, tag, emit); err != nil {
				errs <- fmt.Errorf("%s: %w", tag, err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := deleteRace(ctx, s, id); err != nil {
			errs <- fmt.Errorf("p%d delete race: %w", id, err)
		}
	}()
	wg.Wait()
	close(errs)
	return errors.Join(func() (all []error) {
		for err := range errs {
			all = append(all, err)
		}
		return all
	}()...)
}

func contend(ctx context.Context, s *Store, tag string, emit func(string, ...any)) error {
	for k := range contendKeys {
		key := fmt.Sprintf("c%03d", k)
		switch err := s.Create(ctx, key, owned(tag, "shared", t0)); {
		case err == nil:
			emit("C %s %s", key, tag)
		case !errors.Is(err, session.ErrExists):
			return err
		}
	}
	for k := range contendKeys {
		key := fmt.Sprintf("u%03d", k)
		switch err := s.Update(ctx, key, session.Record{Data: []byte(tag), ATime: t0.Add(time.Hour), Version: 1, Owner: "updated"}); {
		case err == nil:
			emit("U %s %s", key, tag)
		case !errors.Is(err, session.ErrConflict):
			return err
		}
	}
	for done := 0; done < contendIncrements; {
		cur, err := s.Load(ctx, "counter")
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(cur.Data))
		if err != nil {
			return fmt.Errorf("counter holds %q: %w", cur.Data, err)
		}
		err = s.Update(ctx, "counter", session.Record{Data: []byte(strconv.Itoa(n + 1)), ATime: t0, Version: cur.Version})
		switch {
		case err == nil:
			done++
			// A Touch rewrites the whole file: it must never bring back
			// data an Update replaced.
			if err := s.Touch(ctx, "counter", t0.Add(time.Duration(done))); err != nil {
				return err
			}
		case !errors.Is(err, session.ErrConflict):
			return err
		}
	}
	emit("N %d", contendIncrements)
	return nil
}

// deleteRace: process 0 deletes each x key; process 1 keeps updating and
// touching it until it is gone (or for a bounded number of tries).
// Neither Update nor Touch may bring a deleted key back.
func deleteRace(ctx context.Context, s *Store, id int) error {
	for k := range contendDeleteKeys {
		key := fmt.Sprintf("x%03d", k)
		if id == 0 {
			if err := s.Delete(ctx, key); err != nil {
				return err
			}
			continue
		}
		// Bounded: if a write brought the key back after its Delete, it
		// would never disappear again; the test then finds it.
		for try := 0; try < 2000; try++ {
			if err := s.Touch(ctx, key, t0.Add(time.Minute)); errors.Is(err, session.ErrNotFound) {
				break
			} else if err != nil {
				return err
			}
			cur, err := s.Load(ctx, key)
			if errors.Is(err, session.ErrNotFound) {
				continue // the cache may lag; Touch decides
			} else if err != nil {
				return err
			}
			err = s.Update(ctx, key, session.Record{Data: []byte("updated"), ATime: t0, Version: cur.Version})
			if errors.Is(err, session.ErrNotFound) {
				break
			} else if err != nil && !errors.Is(err, session.ErrConflict) {
				return err
			}
		}
	}
	return nil
}

func TestTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	setup := newStore(t, dir, WithCacheSize(0))
	for k := range contendKeys {
		if err := setup.Create(ctx, fmt.Sprintf("u%03d", k), owned("initial", "before", t0)); err != nil {
			t.Fatal(err)
		}
	}
	for k := range contendDeleteKeys {
		if err := setup.Create(ctx, fmt.Sprintf("x%03d", k), owned("doomed", "doomed", t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := setup.Create(ctx, "counter", rec("0", t0)); err != nil {
		t.Fatal(err)
	}

	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	type proc struct {
		wait  func() error
		lines *lineReader
		start func() error
	}
	var procs []proc
	for id := range 2 {
		cmd := helperCmd(cctx, "contender", dir, strconv.Itoa(id))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lr := readLines(stdout)
		procs = append(procs, proc{
			wait:  cmd.Wait,
			lines: lr,
			start: func() error { _, err := stdin.Write([]byte("go\n")); return err },
		})
	}
	for _, p := range procs {
		<-p.lines.ready
	}
	for _, p := range procs {
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
	}
	creates := make(map[string][]string)
	updates := make(map[string][]string)
	increments := 0
	for i, p := range procs {
		lines := p.lines.all()
		if err := p.wait(); err != nil {
			t.Fatalf("process %d: %v (output tail %q)", i, err, tail(lines))
		}
		if len(lines) == 0 || lines[0] != "R" {
			t.Fatalf("process %d never got ready: %q", i, lines)
		}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "C":
				creates[f[1]] = append(creates[f[1]], f[2])
			case len(f) == 3 && f[0] == "U":
				updates[f[1]] = append(updates[f[1]], f[2])
			case len(f) == 2 && f[0] == "N":
				n, _ := strconv.Atoi(f[1])
				increments += n
			default:
				t.Fatalf("process %d printed %q", i, l)
			}
		}
	}

	check := newStore(t, dir, WithCacheSize(0))
	for k := range contendKeys {
		key := fmt.Sprintf("c%03d", k)
		if len(creates[key]) != 1 {
			t.Errorf("Create %s won by %v, want exactly one winner", key, creates[key])
			continue
		}
		got, err := check.Load(ctx, key)
		if err != nil || string(got.Data) != creates[key][0] || got.Version != 1 {
			t.Errorf("%s = %q version %d, %v; want the winner's %q at version 1", key, got.Data, got.Version, err, creates[key][0])
		}
	}
	for k := range contendKeys {
		key := fmt.Sprintf("u%03d", k)
		if len(updates[key]) != 1 {
			t.Errorf("Update of %s at version 1 won by %v, want exactly one winner", key, updates[key])
			continue
		}
		got, err := check.Load(ctx, key)
		if err != nil || string(got.Data) != updates[key][0] || got.Version != 2 || !got.Created.Equal(t0) {
			t.Errorf("%s = %q version %d created %v, %v; want the winner's %q at version 2", key, got.Data, got.Version, got.Created, err, updates[key][0])
		}
	}
	want := 2 * contenderGoroutines * contendIncrements
	if increments != want {
		t.Errorf("processes report %d increments, want %d", increments, want)
	}
	got, err := check.Load(ctx, "counter")
	if err != nil || string(got.Data) != strconv.Itoa(want) || got.Version != uint64(want)+1 {
		t.Errorf("counter = %q at version %d, %v; want %d at version %d (lost updates?)", got.Data, got.Version, err, want, want+1)
	}
	for k := range contendDeleteKeys {
		key := fmt.Sprintf("x%03d", k)
		if got, err := check.Load(ctx, key); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("%s after Delete raced Update and Touch: %q version %d, %v; want it gone", key, got.Data, got.Version, err)
		}
	}
	// The owner index, written by both processes at once, lists exactly
	// the sessions of each owner.
	var cKeys, uKeys []string
	for k := range contendKeys {
		cKeys = append(cKeys, fmt.Sprintf("c%03d", k))
		uKeys = append(uKeys, fmt.Sprintf("u%03d", k))
	}
	wantOwned(t, check, "shared", cKeys...)
	wantOwned(t, check, "updated", uKeys...)
	wantOwned(t, check, "before")
	wantOwned(t, check, "doomed")
	if temps := tempFiles(t, dir); len(temps) != 0 {
		t.Errorf("temp files left: %v", temps)
	}
}
