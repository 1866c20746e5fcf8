// Package memory is an in-process session.Store: sessions live in this
// process's memory and die with it, and are not shared between processes.
// It suits tests, development and single-process deployments that accept
// losing sessions on restart.
//
//	store, err := memory.New()
//	...
//	m, err := session.New(store)
//
// The store is split into shards, each a map under its own lock, so
// requests on different sessions rarely contend: there is no global lock on
// any path but Cleanup's walk, which takes one shard at a time. Data is
// copied on the way in and on the way out, so neither the caller nor the
// store can change the other's bytes. Times are kept exactly (the
// conformance Precision is 0).
//
// The store implements session.OwnerIndex: an index from owner to the keys
// of its sessions, sharded like the records, so listing one user's
// sessions costs what that user has, whatever the store holds.
//
// Errors read "memory: <op>: <cause>" and wrap the session sentinels
// (ErrNotFound, ErrExists, ErrConflict, ErrInvalidKey, ErrTooLarge) and
// context errors, for errors.Is.
package memory
