// Package bench measures websession's middleware side by side with the
// session libraries Go programs use today: github.com/alexedwards/scs/v2
// (memstore, postgresstore, mysqlstore, redisstore) and github.com/gorilla/sessions
// (FilesystemStore, CookieStore), through the same net/http handlers, on
// the same machine and the same databases, in one go test -bench run.
//
// The module is never tagged and nothing depends on it; it holds only
// tests and benchmarks. README.md has the latest figures, the command that
// produced them and the targets they are judged against.
//
// Each scenario's handler is written once against a three-method adapter
// (wrap, getInt, putInt) that each library implements, so every library
// runs the same application code. Each store is wrapped to count its calls,
// and each SQL or Redis connection is wrapped to count its network round trips, so
// the benchmarks report work done as well as time spent; after every timed
// loop the result is checked (the count equals the increments, the new
// session reads back), so that no backend can look fast by skipping work.
package bench
