// Package syncmapstore is an example third-party session store: its
// records live in a sync.Map, and every write is a compare-and-swap of an
// immutable entry, so no lock is ever taken.
//
// It is not one of this project's drivers. It shows, from a module of its
// own, how any store adopts the conformance suite: syncmapstore_test.go
// is one call to conformance.Run. Like the memory driver, it keeps
// sessions in this process only.
package syncmapstore
