// Package redisstore is a session.Store on Redis 7: one server, a
// Sentinel-managed one, or a Redis Cluster, where sessions spread over the
// nodes. It is the store for deployments that already run Redis, and the
// way to scale sessions out beyond one database node.
//
// The package is named redisstore, in the directory drivers/redis, so that
// it does not clash with go-redis's package redis, which every file that
// builds a client imports too; scs and gorilla's ecosystem call their
// Redis stores the same.
//
// # Use
//
// Hand over the application's client (a *redis.Client, a Sentinel
// failover client, a *redis.ClusterClient: any redis.UniversalClient),
// which the store never closes:
//
//	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
//	store, err := redisstore.New(ctx, client, redisstore.WithKeyPrefix("app:sess:"))
//
// or let Open build a client from a redis:// URL, which Close then closes:
//
//	store, err := redisstore.Open(ctx, "redis://127.0.0.1:6379/0")
//
// and give the store to session.New. Both check the server at once (a PING,
// and loading the store's Lua scripts).
//
// # Keys
//
// A record is one string key; its shard is FNV-1a of the session key
// modulo Shards (1024), written as a hash tag:
//
//	<prefix>r:{<shard>}:<key>   the record: header and data (format.go)
//	<prefix>a:{<shard>}         the shard's access-time index: a sorted set,
//	                            member = key, score = ATime in whole µs
//	<prefix>o:{<owner>}         an owner's sessions: a hash, field = key,
//	                            value = the binding's token
//
// Redis Cluster places a key by its hash tag, the part in braces: a record
// and its shard's index always share a hash slot, so every write changes
// both in one script, atomically, and the 1024 shards, with their
// sessions, spread over the Cluster's nodes. The prefix (default
// "websession:") may not contain braces, which would change the tags.
//
// # Round trips
//
// Load is one GET (none for a record the client cache holds). Create,
// Update (a compare-and-swap on the version),
// Touch (which never creates) and Delete are each one Lua script, run with
// EVALSHA: one round trip. Times are stored to the nanosecond and come
// only from the caller; no script calls TIME.
//
// Owners (session.OwnerIndex) add steps only where a record and its
// owner's set, which live in different hash slots, must both change. On a
// single server (a *redis.Client, Sentinel included) the scripts of
// Create and Update add the session to its new owner's set, so binding an
// owner at login costs no extra round trip. On a Cluster, where one script
// cannot touch two slots, a Create with an owner costs a second round
// trip, and an Update that binds a session to another owner two more.
// Everywhere, deleting a session that has an owner, or taking it from its
// owner, removes the old entry with one more command. Requests that do
// not change the owner pay nothing for owners.
//
// # Owners in a Cluster
//
// A record says who owns it; the owner's set is an index of candidates,
// which LoadOwned verifies: it reads every listed record (a pipeline, one
// round trip per node) and returns those that exist and name the owner,
// so its cost grows with that owner's sessions only. The order of the
// steps guarantees that the set never misses a live session bound to the
// owner:
//
//   - Update changing the owner writes the new owner's entry first, then
//     the record (its first attempt finds the owner changing, writes
//     nothing and asks for the entry). A crash in between leaves an entry
//     whose record names another owner: LoadOwned skips it.
//   - Create writes the record first, then the entry, and returns only
//     then: until it returns, the session's id has been given to no one,
//     so a crash in between leaves a record that no one can use, which
//     Cleanup removes. If writing the entry fails, Create deletes the
//     record and fails.
//   - LoadOwned removes the entries whose record is gone (deleted, expired
//     by Redis), and only those: an entry whose record names another owner
//     may be an owner change between its two steps.
//   - Every removal is conditional on the binding's token, which the record
//     and the entry share: an entry rewritten by a newer binding of the
//     same session (a session moved away and back) is never removed by a
//     step of the older one.
//
// So a crash or a failure leaves at most a stale entry, which readers skip
// and tidy, never a missing one. A binding that brings an owner's set to
// 64, 128, 256, ... entries prunes it as LoadOwned does, so sets of
// owners who never list their sessions stay within about twice their live
// sessions.
//
// # Cleanup
//
// Cleanup never scans the key space. For 16 shards at a time it reads
// each index from the oldest entry up to the cutoff (ZRANGEBYSCORE with a
// limit, one pipeline), and passes each batch of candidates to a script
// that reads every candidate's exact ATime from the record itself and
// deletes only those before the cutoff: a session touched after Cleanup
// chose it is kept. The scripts run one at a time, each holding its node
// for one batch (WithCleanupBatch, default 500), so requests queue behind
// one batch at most. Several servers may run Cleanup at once; each record
// is deleted, and counted, once.
//
// # Expiry
//
// WithExpiry(d) makes Redis's expiry a safety net behind Cleanup: every
// write sets the record to expire at its ATime plus d (an absolute time,
// PXAT/PEXPIREAT, computed from the caller's ATime, so the store still
// reads no clock), and deletes up to four records of its shard whose ATime
// is more than d before its own, with their index entries, so the indexes
// do not fill with entries of expired records either. Redis compares the
// expiry with its own clock: a Redis clock ahead of the application
// servers' ends sessions early by the difference, so choose d well above
// the manager's timeout.
//
// # Client cache
//
// WithClientCache keeps records in the process, so that a Load of a
// session the store read or wrote before costs no round trip: a read-only
// request does not reach Redis, a counter request reaches it once. It
// stays coherent with the other stores over the same keys through their
// change messages: on one server, every script that changes records
// publishes the key and the record's new version and ATime on the store's
// change channel, in the order the scripts ran, and each cache drops a
// record any other write contradicts. A Load may thus miss another
// store's change of the last moments (under a millisecond on loopback; at
// most a second, beyond which a silent subscription stops the cache from
// serving). Writes always run in Redis, so a stale read costs at most a
// conflict, never a lost update or a revived session. It needs a
// *redis.Client (not a Cluster); see WithClientCache and cache.go.
//
// # Failures
//
// Errors read "redis: <op>: <cause>" and wrap the cause: errors.As reaches
// go-redis's redis.Error or the network error, and a cancelled call
// satisfies errors.Is(err, context.Canceled). A server restarted or a node
// failed over makes calls fail with an error while it is away; the same
// store and client work again once it is back. During a Cluster's
// resharding, Redis refuses a script whose keys are split between two
// nodes (TRYAGAIN); the store retries such refusals, and redirections the
// client gave up on, for about two seconds: the command did not run, so
// running it again is safe. go-redis itself retries a command whose
// connection broke (MaxRetries): if the first attempt ran, a retried
// Create reports session.ErrExists and a retried Update session.ErrConflict,
// which the manager handles (a new id; a reload and a new attempt).
package redisstore
