package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver for sql.Open
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers the "postgres" driver for sql.Open
	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/postgres"
)

// dsn is the server the runnable examples use: the tests' one.
func dsn() string {
	if dsn := os.Getenv("WEBSESSION_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://root@127.0.0.1:5432/test?sslmode=disable"
}

// Sessions in PostgreSQL, shared by every application server that uses the
// same table, over the application's own pool. It serves HTTP, so it is
// compiled but not run by go test.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("postgres", os.Getenv("DATABASE_URL")) // the application's pool
	if err != nil {
		log.Fatal(err)
	}
	store, err := postgres.New(ctx, db, postgres.WithTable("sessions")) // fails here if the server cannot be reached
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // its prepared statements; the pool stays the application's

	// Idempotent and safe when several servers start at once; migrates a
	// table made by an earlier version in place.
	if err := store.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}

	m, err := session.New(store, session.WithInitializer(map[string]any{"count": 0}))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	http.Handle("/count", m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _ := session.Get[int](s, "count")
		if err := s.Set("count", n+1); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, n+1)
	})))
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// With pgx: database/sql over pgx's stdlib driver works as lib/pq does
// (the conformance suite runs over both). Compiled, not run.
func Example_pgx() {
	ctx := context.Background()
	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	store, err := postgres.New(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	m, err := session.New(store)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
}

// Open makes a pool of its own, with defaults fit for many concurrent
// requests, and Close closes it.
func ExampleOpen() {
	store, err := postgres.Open(context.Background(), dsn(), postgres.WithMaxConns(8))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	fmt.Println(store.DB().Stats().MaxOpenConnections)
	// Output: 8
}

// The table's SQL, for a migration tool; CreateTable runs the same, as
// far as needed.
func ExampleStore_Schema() {
	store, err := postgres.Open(context.Background(), dsn(), postgres.WithSchema("app"), postgres.WithTable("sessions"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	fmt.Print(store.Schema())
	// Output:
	// CREATE TABLE IF NOT EXISTS "app"."sessions" (
	//     session_id text COLLATE "C" NOT NULL PRIMARY KEY
	//                CHECK (octet_length(session_id) BETWEEN 1 AND 128),
	//     data       bytea       NOT NULL,
	//     atime      timestamptz NOT NULL,
	//     created    timestamptz NOT NULL,
	//     version    bigint      NOT NULL CHECK (version >= 1),
	//     owner      text COLLATE "C" NOT NULL DEFAULT ''
	// );
	// ALTER TABLE "app"."sessions" ADD COLUMN IF NOT EXISTS owner text COLLATE "C" NOT NULL DEFAULT '';
	// CREATE INDEX IF NOT EXISTS "sessions_atime_idx" ON "app"."sessions" (atime);
	// CREATE INDEX IF NOT EXISTS "sessions_owner_idx" ON "app"."sessions" (owner) WHERE owner <> '';
}

// An *sqlx.DB is accepted as it is.
func ExampleNew_sqlx() {
	db, err := sqlx.Open("postgres", dsn())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := postgres.New(context.Background(), db, postgres.WithTable("Sessions"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(store.Table())
	// Output: "Sessions"
}
