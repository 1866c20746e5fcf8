package session

import (
	"context"
	"errors"
	"time"
)

// Store is the driver interface: a durable map from opaque keys to opaque
// records. The full contract is in the package documentation, section
// "The Store contract"; the conformance module turns each of its sentences
// into a test.
//
// A Store never reads a clock: every time it stores comes from its caller.
// All methods are safe for concurrent use.
type Store interface {
	// Load returns the record stored under key, or ErrNotFound.
	Load(ctx context.Context, key string) (Record, error)

	// Create inserts rec under key with Version 1 (rec.Version is ignored).
	// It returns ErrExists, and changes nothing, if key is taken.
	Create(ctx context.Context, key string, rec Record) error

	// Update replaces Data and ATime of the record under key, and stores
	// Version+1, only if the stored Version equals rec.Version. It returns
	// ErrConflict if the version differs and ErrNotFound if the record is
	// gone. It never creates a record and never changes Created.
	Update(ctx context.Context, key string, rec Record) error

	// Touch sets ATime of the record under key, keeping Data, Created and
	// Version. It returns ErrNotFound if the record is absent and never
	// creates one.
	Touch(ctx context.Context, key string, atime time.Time) error

	// Delete removes the record under key. Deleting a missing key is not an
	// error.
	Delete(ctx context.Context, key string) error

	// Cleanup deletes every record whose ATime is strictly before cutoff and
	// returns how many it deleted.
	Cleanup(ctx context.Context, cutoff time.Time) (int, error)
}

// Record is what a Store keeps under a key.
type Record struct {
	// Data is the encoded session. Stores treat it as opaque bytes: it may
	// be empty and may hold any byte value.
	Data []byte
	// ATime is the time of the last recorded access, set by Create, Update
	// and Touch.
	ATime time.Time
	// Created is set by Create and never changed afterwards.
	Created time.Time
	// Version counts writes of Data: 1 after Create, +1 per Update.
	Version uint64
	// Owner is the owner key of a session bound to an owner (see
	// Session.SetOwner), or "". The manager makes it like a store key: a
	// hash of the application's owner string, matching ValidKey. Stores
	// that implement OwnerIndex keep it: Create stores it, Update replaces
	// it together with Data, Touch keeps it, and Load returns it. Other
	// stores may drop it.
	Owner string
}

// OwnerIndex is an optional interface of a Store: it finds the records of
// one owner without looking at any other, so listing and ending one user's
// sessions costs the same among a thousand sessions as among a billion.
// Adding it to Store would break every third-party store, so the manager
// looks for it with a type assertion; its owner methods report
// ErrNoOwnerIndex for a store that lacks it.
//
// A store implementing OwnerIndex keeps Record.Owner as the contract says,
// and keeps its index exact through every write: Create, Update (which may
// change or clear the owner), Delete and Cleanup. Its index must be as
// durable and as shared as the records themselves.
type OwnerIndex interface {
	// LoadOwned returns every record whose Owner is owner, each with its
	// key, as Load would return it, in no particular order; an empty
	// result, not an error, when there is none. It includes records
	// expired but not yet cleaned up: the manager filters them. owner is
	// a well-formed key (ValidKey); a store may refuse others with
	// ErrInvalidKey.
	LoadOwned(ctx context.Context, owner string) ([]OwnedRecord, error)
}

// OwnedRecord is one result of OwnerIndex.LoadOwned.
type OwnedRecord struct {
	Key    string
	Record Record
}

// Sentinel errors of the Store contract. Drivers return them (possibly
// wrapped); callers test them with errors.Is.
var (
	// ErrNotFound: no record under the key.
	ErrNotFound = errors.New("session: record not found")
	// ErrExists: Create found the key taken.
	ErrExists = errors.New("session: record already exists")
	// ErrConflict: Update found a different version than expected.
	ErrConflict = errors.New("session: version conflict")
	// ErrInvalidKey: a key outside the alphabet or length the contract
	// allows. The manager never produces one; drivers refuse them.
	ErrInvalidKey = errors.New("session: invalid store key")
	// ErrTooLarge: session data larger than the manager's limit or than
	// what a store can hold. Nothing was written.
	ErrTooLarge = errors.New("session: data too large")
	// ErrClosed: the store was used after its Close.
	ErrClosed = errors.New("session: use after close")
	// ErrNoOwnerIndex: an owner operation on a store that does not
	// implement OwnerIndex.
	ErrNoOwnerIndex = errors.New("session: store has no owner index (it does not implement session.OwnerIndex)")
)

// MaxKeyLen is the longest store key the manager may produce and every
// store must accept.
const MaxKeyLen = 128

// ValidKey reports whether key is a well-formed store key: 1 to MaxKeyLen
// bytes of [A-Za-z0-9_-]. Such a key contains no path separator, no dot and
// no byte that needs quoting in SQL or a file name; drivers call it before
// a key reaches a path or a query, as defence in depth.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if !isB64URL(key[i]) {
			return false
		}
	}
	return true
}
