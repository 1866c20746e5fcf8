package memory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/memory"
)

var t0 = time.Date(2041, 3, 7, 13, 45, 12, 123456789, time.FixedZone("X", -9*3600-30*60))

func TestContract(t *testing.T) {
	ctx := context.Background()
	s := mustNew(t)
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load missing: %v", err)
	}
	data := []byte("a\x00\xff")
	if err := s.Create(ctx, "k", session.Record{Data: data, ATime: t0, Created: t0, Version: 99}); err != nil {
		t.Fatal(err)
	}
	data[0] = 'Z' // the store kept no alias
	rec, err := s.Load(ctx, "k")
	if err != nil || string(rec.Data) != "a\x00\xff" || rec.Version != 1 || !rec.ATime.Equal(t0) || !rec.Created.Equal(t0) {
		t.Fatalf("Load after Create: %+v %v", rec, err)
	}
	rec.Data[0] = 'Y' // Load returned no alias
	if again, _ := s.Load(ctx, "k"); again.Data[0] != 'a' {
		t.Fatal("Load aliases the stored bytes")
	}
	if err := s.Create(ctx, "k", session.Record{Data: []byte("other")}); !errors.Is(err, session.ErrExists) {
		t.Fatalf("Create existing: %v", err)
	}
	t1 := t0.Add(time.Minute)
	if err := s.Update(ctx, "k", session.Record{Data: []byte("new"), ATime: t1, Created: t1, Version: 2}); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("Update stale: %v", err)
	}
	if err := s.Update(ctx, "k", session.Record{Data: []byte("new"), ATime: t1, Created: t1, Version: 1}); err != nil {
		t.Fatal(err)
	}
	rec, _ = s.Load(ctx, "k")
	if string(rec.Data) != "new" || rec.Version != 2 || !rec.ATime.Equal(t1) || !rec.Created.Equal(t0) {
		t.Fatalf("after Update: %+v", rec)
	}
	if err := s.Update(ctx, "missing", session.Record{Version: 1}); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Update missing: %v", err)
	}
	t2 := t1.Add(time.Minute)
	if err := s.Touch(ctx, "k", t2); err != nil {
		t.Fatal(err)
	}
	rec, _ = s.Load(ctx, "k")
	if !rec.ATime.Equal(t2) || rec.Version != 2 || string(rec.Data) != "new" {
		t.Fatalf("after Touch: %+v", rec)
	}
	if err := s.Touch(ctx, "missing", t2); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch missing: %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d: Update or Touch created a record", s.Len())
	}
	if err := s.Delete(ctx, "missing"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "../x", session.Record{}); !errors.Is(err, session.ErrInvalidKey) {
		t.Fatalf("Create with a hostile key: %v", err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after Delete: %v", err)
	}
}

func TestCleanup(t *testing.T) {
	ctx := context.Background()
	s := mustNew(t)
	for i := 0; i < 1000; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		if err := s.Create(ctx, fmt.Sprintf("k%d", i), session.Record{ATime: at, Created: at}); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := t0.Add(400 * time.Second) // k400 is exactly at the cutoff: kept
	n, err := s.Cleanup(ctx, cutoff)
	if err != nil || n != 400 {
		t.Fatalf("Cleanup = %d, %v; want 400", n, err)
	}
	if _, err := s.Load(ctx, "k400"); err != nil {
		t.Fatal("the record exactly at the cutoff was deleted")
	}
	if _, err := s.Load(ctx, "k399"); !errors.Is(err, session.ErrNotFound) {
		t.Fatal("a record before the cutoff survived")
	}
	if s.Len() != 600 {
		t.Fatalf("Len = %d", s.Len())
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := mustNew(t)
	_, err := s.Load(ctx, "k")
	errs := []error{err,
		s.Create(ctx, "k", session.Record{}), s.Update(ctx, "k", session.Record{}),
		s.Touch(ctx, "k", t0), s.Delete(ctx, "k")}
	_, err = s.Cleanup(ctx, t0)
	errs = append(errs, err)
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("call %d: %v, want context.Canceled", i, err)
		}
	}
}

func TestConcurrentUpdatesOneWinner(t *testing.T) {
	ctx := context.Background()
	s := mustNew(t)
	for round := 0; round < 50; round++ {
		key := fmt.Sprintf("k%d", round)
		if err := s.Create(ctx, key, session.Record{ATime: t0, Created: t0}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.Update(ctx, key, session.Record{Data: []byte{byte(g)}, ATime: t0, Version: 1})
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, session.ErrConflict) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("round %d: %d updates with one version won, want exactly 1", round, wins)
		}
	}
}

func TestManyGoroutinesDistinctKeys(t *testing.T) {
	ctx := context.Background()
	s := mustNew(t)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				key := fmt.Sprintf("g%d-%d", g, i)
				want := []byte(key)
				if err := s.Create(ctx, key, session.Record{Data: want, ATime: t0}); err != nil {
					t.Error(err)
					return
				}
				if err := s.Update(ctx, key, session.Record{Data: append(want, '!'), ATime: t0, Version: 1}); err != nil {
					t.Error(err)
					return
				}
				rec, err := s.Load(ctx, key)
				if err != nil || !bytes.Equal(rec.Data, append(want, '!')) || rec.Version != 2 {
					t.Errorf("%s: %q v%d %v", key, rec.Data, rec.Version, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if s.Len() != 16*200 {
		t.Fatalf("Len = %d", s.Len())
	}
}

func TestErrorShape(t *testing.T) {
	ctx := context.Background()
	s := mustNew(t)
	err := s.Update(ctx, "missing", session.Record{})
	if !errors.Is(err, session.ErrNotFound) || err.Error() != "memory: update: session: record not found" {
		t.Fatalf("Update of a missing key: %q, want \"memory: update: ...\" wrapping ErrNotFound", err)
	}
	if err := s.Create(ctx, "bad key!", session.Record{}); !errors.Is(err, session.ErrInvalidKey) {
		t.Fatalf("Create with an invalid key: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Load(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context: %v", err)
	}
}

func TestMaxDataSize(t *testing.T) {
	ctx := context.Background()
	if _, err := memory.New(memory.WithMaxDataSize(0)); err == nil || !strings.HasPrefix(err.Error(), "memory: new: ") {
		t.Fatalf("WithMaxDataSize(0): %v, want a \"memory: new: ...\" error", err)
	}
	s, err := memory.New(memory.WithMaxDataSize(8))
	if err != nil || s.MaxDataSize() != 8 {
		t.Fatalf("New: %v, MaxDataSize %d", err, s.MaxDataSize())
	}
	if err := s.Create(ctx, "k", session.Record{Data: make([]byte, 9)}); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("9 bytes over a limit of 8: %v", err)
	}
	if s.Len() != 0 {
		t.Fatal("refused data was stored")
	}
	if err := s.Create(ctx, "k", session.Record{Data: make([]byte, 8)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "k", session.Record{Data: make([]byte, 9), Version: 1}); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("Update over the limit: %v", err)
	}
}

func TestOwnerIndex(t *testing.T) {
	ctx := context.Background()
	s := mustNew(t)
	put := func(key, owner string) {
		t.Helper()
		if err := s.Create(ctx, key, session.Record{Data: []byte(key), ATime: t0, Created: t0, Owner: owner}); err != nil {
			t.Fatal(err)
		}
	}
	owned := func(owner string) []string {
		t.Helper()
		recs, err := s.LoadOwned(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range recs {
			if r.Record.Owner != owner || string(r.Record.Data) != r.Key {
				t.Fatalf("LoadOwned(%s) returned %+v", owner, r)
			}
			keys = append(keys, r.Key)
		}
		slices.Sort(keys)
		return keys
	}
	put("a1", "ann")
	put("a2", "ann")
	put("b1", "bob")
	put("x", "")
	if got := owned("ann"); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("ann owns %v", got)
	}
	if got := owned("nobody"); len(got) != 0 {
		t.Fatalf("an unknown owner owns %v", got)
	}
	// Update moves a record to another owner, Delete and Cleanup drop it.
	if err := s.Update(ctx, "a2", session.Record{Data: []byte("a2"), ATime: t0, Version: 1, Owner: "bob"}); err != nil {
		t.Fatal(err)
	}
	if got := owned("bob"); !slices.Equal(got, []string{"a2", "b1"}) {
		t.Fatalf("after the owner change bob owns %v", got)
	}
	if err := s.Touch(ctx, "a1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Load(ctx, "a1"); rec.Owner != "ann" {
		t.Fatalf("Touch changed the owner to %q", rec.Owner)
	}
	if err := s.Delete(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Cleanup(ctx, t0.Add(time.Minute)); err != nil || n != 2 {
		t.Fatalf("Cleanup: %d %v", n, err)
	}
	if got := owned("bob"); len(got) != 0 {
		t.Fatalf("after Delete and Cleanup bob owns %v", got)
	}
	if got := owned("ann"); !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("ann owns %v after Cleanup, want the touched a1", got)
	}
}
