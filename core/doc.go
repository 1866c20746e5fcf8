// Package session gives net/http handlers server-side sessions, in the
// manner of web.py's session module, with its known defects fixed: no lost
// updates between overlapping requests, no killed session brought back by
// a request in flight, expiry checked on every load, no write for a request
// that changed nothing, JSON instead of pickle, and id rotation at login.
//
// # Import
//
// The module lives in the directory core; its package is named session:
//
//	import session "github.com/websession/websession/core"
//
// The alias is optional (without it the package is still session), but it
// tells readers and goimports which name the path brings in.
//
// # Use
//
// Build a Manager over a Store, wrap the application's handler with its
// Middleware, and reach the session of a request with FromContext:
//
//	m, err := session.New(store, session.WithInitializer(map[string]any{"count": 0}))
//	...
//	http.Handle("/count", m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		s := session.FromContext(r.Context())
//		n, err := session.Update(s, "count", func(n int) (int, error) { return n + 1, nil })
//		if err != nil {
//			http.Error(w, err.Error(), session.StatusCode(err))
//			return
//		}
//		fmt.Fprintln(w, n)
//	})))
//
// A request that never uses its session costs no store call. A session is
// loaded on first use, and saved when the response is committed (its first
// WriteHeader, Write or Flush, or when the handler returns): a new session
// is stored only if something was written into it, an existing one is
// written only if changed, and otherwise at most touched (its access time
// refreshed) once per touch interval. Changes made after the response was
// committed cannot carry a cookie; they fail with ErrCommitted.
//
// # Errors
//
// Every error has one owner, which reports it once. An error a Session
// method or Update returns belongs to its caller: the middleware never
// logs or reports it again. The error handler (WithErrorHandler) gets only
// the errors no application code could see: a save that fails when the
// response is committed, and a load that fails before the handler runs;
// its response (by default StatusCode(err): 409, 503 or 500) replaces the
// application's. Errors satisfy errors.Is with this package's sentinels
// (ErrConflict, ErrTooLarge, ErrCommitted, ...) and wrap the store's.
//
// # Privacy
//
// A session stores what the application puts in it and, only with
// WithIgnoreChangeIP(false), the client IP that created it, which that
// check needs; otherwise no IP is stored (and a stored one is dropped by
// the next save). Stores never see session ids, only their hashes.
//
// # Owners, flash messages, remember me
//
// SetOwner binds a session to an owner, an opaque string such as a user
// id, usually at login with Regenerate; the binding rides in the session's
// next store write (no extra round trip), survives Regenerate and is
// dropped by Kill. Manager.Sessions lists an owner's live sessions ("where
// you're signed in": created, last seen, SetLabel's labels, which one is
// the caller's), and EndSession and EndSessions end one, all, or all but
// the caller's (after a password change). An ended session is deleted at
// once and, like a killed one, never comes back through a request in
// flight. These need a store implementing OwnerIndex (every driver of this
// project does), and cost what the owner has, never what the store holds.
//
// Pop reads a value and deletes it: a flash message, shown once.
// RememberMe gives one session a persistent cookie of its own Max-Age.
// Status tells handlers and middleware whether the session is new, loaded,
// changed or killed.
//
// # Ids, cookies and keys
//
// A session id is 256 bits from crypto/rand in unpadded base64url (43
// characters). The cookie value is checked strictly, for length, alphabet,
// canonical encoding and, with WithSecretKey, an HMAC-SHA256 signature,
// before anything else; anything malformed is treated as no cookie and
// never reaches a store. An id the server did not issue is never adopted: a
// well-formed but unknown id gets a fresh session under a new id.
//
// Stores never see ids. The store key of a session is the SHA-256 of its
// id, in base64url, so a leaked table or directory yields no usable cookie,
// and no cookie byte ever becomes part of a file name or a query.
//
// # Concurrency
//
// Requests of one session overlap: a page and its XHRs, two tabs, a double
// click. Each request works on its own copy of the session, loaded on first
// use; what it changed is saved as one unit when its response is committed,
// with a compare-and-swap on the version it loaded. What each kind of
// change gets when another request saved the session in between:
//
//   - Blind writes (Set, Delete, Clear of values this request did not read)
//     are re-applied on top of the other request's save: requests changing
//     different keys both keep their changes, and for one key the request
//     that saves last wins. The client gets its normal response.
//
//   - Read-then-write: if any value this request read with Get was changed
//     by the other request, nothing of this request is saved (not even its
//     blind writes: a request's changes land together or not at all), and
//     the error handler gets an error satisfying errors.Is(err,
//     ErrConflict): by default the client gets 409 Conflict, and the stored
//     session stays as the other request left it. So no save ever writes a
//     value computed from a stale read, and nothing is rolled back. Every
//     read counts, not only reads of the keys written: a request that reads
//     "user" and writes "cart" must not save a cart meant for a user who
//     has since signed out. The price is a 409 when a request's read and
//     another's write truly overlap; values that many requests change at
//     once belong in Update.
//
//   - Update (the atomic read-modify-write) never fails that way: its
//     function is re-run on the freshly loaded value until its save lands,
//     so concurrent increments are never lost, and it returns the value
//     stored, which the response can show. It saves at once, before it
//     returns, together with the request's earlier changes.
//
//   - Kill deletes the record at once. A request in flight on the killed
//     session can never bring it back: its save finds the record gone and
//     fails with an error satisfying errors.Is(err, ErrConflict) and
//     errors.Is(err, ErrNotFound) (409 by default; the client is not told a
//     change was saved that was not). A request that changed nothing gets
//     its normal response. Expiry meanwhile is treated the same.
//
//   - Regenerate stores the session under its new id, then retires the old
//     record with a compare-and-swap: a save another request made to the
//     old id before that moment is carried over into the new session; one
//     coming after fails like a save into a killed session (409), and
//     never reaches the new session. Only the regenerating response carries
//     the new cookie.
//
//   - Reads never block and never fail for overlapping writers: a request
//     sees the session as it was loaded, plus its own changes.
//
// Saves of one session inside one process never conflict with each other:
// those that arrive while one is being written wait, and are then written
// together, each applied in turn on top of the ones before it as if they
// had run one after the other, in one compare-and-swap (each still gets
// its own outcome: a stale read fails only its own request). Fifty
// overlapping saves cost a few store writes, not fifty. Conflicts with other processes are retried with
// jittered exponential backoff until the save's deadline. Every store call
// is bounded by WithStoreTimeout (5s by default): a stalled store ends the
// request with an error (503 by default) and frees its goroutine and its
// connection; the manager never retries it after the deadline. A save that
// reached the database before the deadline may still be applied by it once
// the database comes back, if the database driver cannot cancel a
// statement on the server (go-sql-driver/mysql; pgx unless configured to
// send cancel requests; lib/pq and Redis do cancel): that write is a
// compare-and-swap on the version the request read, so it lands only if no
// other save came first, and never puts older data over newer.
//
// # The Store contract
//
// A Store keeps opaque records under opaque keys. Every driver must behave
// as follows; the conformance module tests each rule.
//
//   - Keys are made by the manager: 1 to MaxKeyLen (128) bytes of
//     [A-Za-z0-9_-]. A store may refuse any other key with ErrInvalidKey
//     (see ValidKey), and must never let one reach a path or a query
//     unvalidated.
//
//   - A store never reads a clock. Every time it stores (ATime, Created)
//     comes from its caller, and Cleanup compares against the cutoff it is
//     given. Times come back equal (time.Time.Equal) to what was stored, up
//     to the store's documented precision, and never later; the zone they
//     come back in does not matter.
//
//   - Load(ctx, key) returns the record, or ErrNotFound when absent.
//
//   - Create(ctx, key, rec) inserts only: it returns ErrExists, changing
//     nothing, if the key is taken (the manager then draws a new id). The
//     stored Version is 1, whatever rec.Version says.
//
//   - Update(ctx, key, rec) replaces Data and ATime only if the stored
//     Version equals rec.Version, and stores Version+1. It returns
//     ErrConflict, changing nothing, if the version differs, and ErrNotFound,
//     creating nothing, if the record is gone. It never creates a record and
//     never changes Created.
//
//   - Touch(ctx, key, atime) sets ATime only, keeping Data, Created and
//     Version. It returns ErrNotFound if the record is absent and never
//     creates one.
//
//   - Delete(ctx, key) removes the record; deleting a missing key is not an
//     error.
//
//   - Cleanup(ctx, cutoff) deletes every record whose ATime is strictly
//     before cutoff, keeps every other record, and returns how many it
//     deleted.
//
//   - Data is opaque bytes: empty, binary (NUL bytes, invalid UTF-8) and up
//     to the store's documented maximum size, stored byte-exact. A store
//     that cannot hold some data returns an error wrapping ErrTooLarge and
//     stores nothing; it never truncates.
//
//   - Records returned by Load never alias memory the store keeps, and a
//     store keeps no alias of a caller's slice: either side may modify its
//     bytes afterwards without affecting the other.
//
//   - Concurrent calls are safe. Of concurrent Creates of one key exactly
//     one succeeds; of concurrent Updates with the same expected version
//     exactly one succeeds.
//
//   - Every method honours ctx: a cancelled or expired context ends the
//     call with an error satisfying errors.Is(err, context.Canceled) or
//     errors.Is(err, context.DeadlineExceeded). Errors other than the
//     sentinels wrap their cause, so errors.Is and errors.As reach the
//     driver's own error values.
//
//   - Two store values over the same storage (two processes, two pools)
//     see each other's writes and deletes, within a staleness bound the
//     driver documents (0 unless it caches).
//
//   - A store that implements OwnerIndex keeps Record.Owner: Create stores
//     it, Update replaces it with Data and ATime, Touch keeps it, Load
//     returns it. LoadOwned(ctx, owner) returns exactly the records stored
//     with that Owner at the time of the call (within the staleness bound),
//     each as Load returns it: a record deleted, cleaned up, or updated to
//     another owner is no longer listed. Its cost grows with that owner's
//     records, never with the store's.
//
//   - A store that holds resources implements io.Closer. Close is
//     idempotent, and every method called after Close returns an error
//     wrapping ErrClosed. The Manager never closes its store: its owner
//     does.
//
// # Parameters of web.py
//
// Each key of web.py's web.config.session_parameters has an Option:
// cookie_name (WithCookieName), cookie_domain (WithCookieDomain),
// cookie_path (WithCookiePath), secure (WithSecure), httponly
// (WithHTTPOnly), samesite (WithSameSite), timeout (WithTimeout),
// ignore_expiry (WithIgnoreExpiry), ignore_change_ip (WithIgnoreChangeIP),
// secret_key (WithSecretKey), expired_message (WithExpiredMessage); the
// initializer is WithInitializer or WithInitializerFunc.
package session
