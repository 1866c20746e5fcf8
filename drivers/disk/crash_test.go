//go:build unix

package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// The crash test: a writer process loops Create/Update/Touch over a few
// keys with payloads up to 1 MiB, announcing each operation before it
// starts and after it ends; the test SIGKILLs it at a random moment, again
// and again, and after every kill checks that each session file decodes
// and holds exactly the state before the operation in flight or the state
// after it: never a torn file, never a state the writer did not write.

var crashKeys = []string{"crash-a", "crash-b", "crash-c", "crash-d", "crash-e", "crash-f"}

// crashSizes are the payload sizes the writer cycles through: large ones
// take long enough to write that many kills land in the middle.
var crashSizes = []int{0, 1, 100, 4096, 65536, 300_000, 1 << 20}

// crashPayload is the data the writer stores at seq: seq's size, filled by
// a generator seeded with seq, so the test can recompute it.
func crashPayload(seq int64) []byte {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(seq))
	b := make([]byte, crashSizes[seq%int64(len(crashSizes))])
	rand.NewChaCha8(seed).Read(b)
	return b
}

func crashTime(seq int64) time.Time { return t0.Add(time.Duration(seq) * time.Microsecond) }

// crashOwners are the owners the writer binds sessions to; the owner of a
// Create or Update is crashOwner(seq), so a kill between the owner index
// write and the session write is as likely as any other moment.
var crashOwners = []string{"", "ownerA", "ownerB"}

func crashOwner(seq int64) string { return crashOwners[seq%int64(len(crashOwners))] }

// crashWriter is the writer process. arg is "<first seq> <durable 0|1>".
// It prints "R" when ready, "B <key> <op> <seq>" before an operation and
// "E <key> <op> <seq> ok" after it, each line a single unbuffered write so
// that what was printed before the kill reaches the test.
func crashWriter(dir, arg string) error {
	var start int64
	var durable int
	if _, err := fmt.Sscan(arg, &start, &durable); err != nil {
		return err
	}
	s, err := New(dir, WithDurable(durable == 1))
	if err != nil {
		return err
	}
	emit := func(format string, args ...any) {
		if _, err := os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n"); err != nil {
			os.Exit(3)
		}
	}
	emit("R")
	rng := rand.New(rand.NewPCG(uint64(start), 7))
	ctx := context.Background()
	for seq := start; ; seq++ {
		key := crashKeys[rng.IntN(len(crashKeys))]
		cur, err := s.Load(ctx, key)
		var op string
		switch {
		case errors.Is(err, session.ErrNotFound):
			op = "C"
		case err != nil:
			return err
		case rng.IntN(5) < 3:
			op = "U"
		default:
			op = "T"
		}
		emit("B %s %s %d", key, op, seq)
		switch op {
		case "C":
			err = s.Create(ctx, key, session.Record{Data: crashPayload(seq), ATime: crashTime(seq), Created: crashTime(seq), Owner: crashOwner(seq)})
		case "U":
			err = s.Update(ctx, key, session.Record{Data: crashPayload(seq), ATime: crashTime(seq), Version: cur.Version, Owner: crashOwner(seq)})
		case "T":
			err = s.Touch(ctx, key, crashTime(seq))
		}
		if err != nil {
			return fmt.Errorf("%s %s %d: %w", op, key, seq, err)
		}
		emit("E %s %s %d ok", key, op, seq)
	}
}

// crashState is what the test expects a key's file to hold: the seq of
// the operation that wrote each part (data and owner are written
// together).
type crashState struct {
	exists               bool
	data, atime, created int64
	version              uint64
}

func (st crashState) owner() string {
	if !st.exists {
		return ""
	}
	return crashOwner(st.data)
}

func (st crashState) apply(op string, seq int64) crashState {
	switch op {
	case "C":
		return crashState{exists: true, data: seq, atime: seq, created: seq, version: 1}
	case "U":
		st.data, st.atime, st.version = seq, seq, st.version+1
	case "T":
		st.atime = seq
	}
	return st
}

func (st crashState) String() string {
	if !st.exists {
		return "absent"
	}
	return fmt.Sprintf("{data %d, atime %d, created %d, version %d}", st.data, st.atime, st.created, st.version)
}

func (st crashState) matches(rec session.Record, err error) bool {
	if !st.exists {
		return errors.Is(err, session.ErrNotFound) && !errors.Is(err, ErrCorrupt)
	}
	return err == nil && rec.Version == st.version &&
		rec.ATime.Equal(crashTime(st.atime)) && rec.Created.Equal(crashTime(st.created)) &&
		bytes.Equal(rec.Data, crashPayload(st.data)) && rec.Owner == st.owner()
}

type crashOp struct {
	key, op string
	seq     int64
}

func TestCrashDuringWrites(t *testing.T) {
	const rounds = 40
	dir := t.TempDir()
	checker := newStore(t, dir, WithCacheSize(0))
	model := make(map[string]crashState)
	rng := rand.New(rand.NewPCG(1, 2))
	inFlight := 0
	for round := range rounds {
		durable := round % 2
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := helperCmd(ctx, "crashwriter", dir, fmt.Sprintf("%d %d", int64(round+1)*1_000_000, durable))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := readLines(out)
		<-lines.ready
		// Let it write for a while, then kill it wherever it is.
		time.Sleep(time.Duration(2+rng.IntN(40)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		all := lines.all()
		werr := cmd.Wait()
		cancel()
		var ws syscall.WaitStatus
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			ws, _ = ee.Sys().(syscall.WaitStatus)
		}
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the writer ended with %v before it was killed (output %q)", round, werr, tail(all))
		}
		if len(all) == 0 || all[0] != "R" {
			t.Fatalf("round %d: writer never got ready: %q", round, all)
		}

		// Replay the finished operations; remember the one in flight.
		var pending *crashOp
		for _, l := range all[1:] {
			f := strings.Fields(l)
			if len(f) < 4 {
				continue // the kill cut a line short
			}
			seq, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				t.Fatalf("round %d: bad line %q", round, l)
			}
			switch f[0] {
			case "B":
				pending = &crashOp{key: f[1], op: f[2], seq: seq}
			case "E":
				if pending == nil || pending.seq != seq || len(f) != 5 || f[4] != "ok" {
					t.Fatalf("round %d: unexpected line %q", round, l)
				}
				model[f[1]] = model[f[1]].apply(f[2], seq)
				pending = nil
			}
		}
		if pending != nil {
			inFlight++
		}

		// Every file must hold the old or the new state, whole.
		for _, key := range crashKeys {
			got, err := checker.Load(context.Background(), key)
			old := model[key]
			if old.matches(got, err) {
				continue
			}
			if pending != nil && pending.key == key {
				if next := old.apply(pending.op, pending.seq); next.matches(got, err) {
					model[key] = next
					continue
				}
			}
			t.Fatalf("round %d: key %s holds neither the state before nor after the write in flight (%+v): got version %d atime %v, %d bytes, err %v; expected %v",
				round, key, pending, got.Version, got.ATime, len(got.Data), err, old)
		}
		// Each owner lists exactly its sessions, whether the kill came
		// before, between or after the index write and the session write.
		for _, owner := range crashOwners[1:] {
			var want []string
			for _, key := range crashKeys {
				if model[key].owner() == owner {
					want = append(want, key)
				}
			}
			if got := ownedKeys(t, checker, owner); !slices.Equal(got, want) {
				t.Fatalf("round %d: LoadOwned(%s) = %v, want %v", round, owner, got, want)
			}
		}
	}
	// Cleanup removes the temp files the kills left, and nothing else.
	temps := tempFiles(t, dir)
	t.Logf("%d rounds, %d killed with an operation in flight, %d temp files left", rounds, inFlight, len(temps))
	r, err := checker.Sweep(context.Background(), crashTime(0))
	if err != nil {
		t.Fatal(err)
	}
	if r.TempRemoved != len(temps) || r.Deleted != 0 || r.Skipped != 0 {
		t.Errorf("Sweep with nothing expired = %+v, want %d temp files removed and nothing else", r, len(temps))
	}
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Errorf("temp files left after Sweep: %v", left)
	}
	live := 0
	for _, key := range crashKeys {
		got, err := checker.Load(context.Background(), key)
		if !model[key].matches(got, err) {
			t.Errorf("after Sweep, %s: version %d, err %v; want %v", key, got.Version, err, model[key])
		}
		if model[key].exists {
			live++
		}
	}
	r, err = checker.Sweep(context.Background(), crashTime(int64(rounds+2)*1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	if r.Deleted != live || r.Skipped != 0 {
		t.Errorf("Sweep with everything expired = %+v, want %d deleted", r, live)
	}
}

func tail(lines []string) []string {
	if len(lines) > 5 {
		return lines[len(lines)-5:]
	}
	return lines
}
