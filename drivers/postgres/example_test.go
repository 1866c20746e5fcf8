package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers the "postgres" driver for sql.Open
	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/postgres"
)

// Sessions in PostgreSQL, shared by every application server that uses the
// same table. It needs a server, so it is compiled but not run by go test;
// ExampleStore_Schema runs.
func Example() {
	db, err := sql.Open("postgres", os.Getenv("DATABASE_URL")) // the application's pool
	if err != nil {
		log.Fatal(err)
	}
	store, err := postgres.New(db, postgres.WithTable("sessions"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // its prepared statements; the pool stays the application's

	// Idempotent and safe when several servers start at once.
	if err := store.CreateTable(context.Background()); err != nil {
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

// The table's SQL, for a migration tool; CreateTable runs the same.
func ExampleStore_Schema() {
	db, err := sql.Open("postgres", "") // sql.Open does no I/O, nor does New
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := postgres.New(db, postgres.WithSchema("app"), postgres.WithTable("sessions"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(store.Schema())
	// Output:
	// CREATE TABLE IF NOT EXISTS "app"."sessions" (
	//     session_id text COLLATE "C" NOT NULL PRIMARY KEY
	//                CHECK (octet_length(session_id) BETWEEN 1 AND 128),
	//     data       bytea       NOT NULL,
	//     atime      timestamptz NOT NULL,
	//     created    timestamptz NOT NULL,
	//     version    bigint      NOT NULL CHECK (version >= 1)
	// );
	// CREATE INDEX IF NOT EXISTS "sessions_atime_idx" ON "app"."sessions" (atime);
}

// An *sqlx.DB is accepted as it is.
func ExampleNew_sqlx() {
	db, err := sqlx.Open("postgres", "")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := postgres.New(db, postgres.WithTable("Sessions"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(store.Table())
	// Output: "Sessions"
}
