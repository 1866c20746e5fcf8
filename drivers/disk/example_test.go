//go:build unix

package disk_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"time"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/disk"
)

func Example() {
	dir, err := os.MkdirTemp("", "sessions")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// In an application: disk.New("./sessions"), then session.New(store).
	store, err := disk.New(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := store.Create(ctx, "key1", session.Record{Data: []byte(`{"count":1}`), ATime: now, Created: now}); err != nil {
		log.Fatal(err)
	}
	rec, err := store.Load(ctx, "key1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s version %d, atime exact: %v\n", rec.Data, rec.Version, rec.ATime.Equal(now))

	err = store.Create(ctx, "key1", session.Record{ATime: now, Created: now})
	fmt.Println("second Create:", err)

	n, err := store.Cleanup(ctx, now.Add(time.Hour))
	fmt.Println("cleaned up:", n, err)
	// Output:
	// {"count":1} version 1, atime exact: true
	// second Create: disk: create: session: record already exists
	// cleaned up: 1 <nil>
}

// LoadOwned lists the sessions bound to one owner (the manager stores a
// hash of the application's user id as Record.Owner) by reading that
// owner's index, not the whole directory.
func ExampleStore_LoadOwned() {
	dir, err := os.MkdirTemp("", "sessions")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := disk.New(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	for key, owner := range map[string]string{"laptop": "user42", "phone": "user42", "other": "user7"} {
		if err := store.Create(ctx, key, session.Record{Data: []byte(`{}`), ATime: now, Created: now, Owner: owner}); err != nil {
			log.Fatal(err)
		}
	}
	owned, err := store.LoadOwned(ctx, "user42")
	if err != nil {
		log.Fatal(err)
	}
	var keys []string
	for _, o := range owned {
		keys = append(keys, o.Key)
	}
	slices.Sort(keys)
	fmt.Println("user42:", keys)

	// Ending one of them takes it out of the index.
	if err := store.Delete(ctx, "phone"); err != nil {
		log.Fatal(err)
	}
	owned, _ = store.LoadOwned(ctx, "user42")
	fmt.Println("after Delete:", len(owned))
	// Output:
	// user42: [laptop phone]
	// after Delete: 1
}
