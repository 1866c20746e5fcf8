module github.com/websession/websession/bench

go 1.26.0

replace (
	github.com/websession/websession/conformance => ../conformance
	github.com/websession/websession/core => ../core
	github.com/websession/websession/drivers/disk => ../drivers/disk
	github.com/websession/websession/drivers/memory => ../drivers/memory
	github.com/websession/websession/drivers/mysql => ../drivers/mysql
	github.com/websession/websession/drivers/postgres => ../drivers/postgres
	github.com/websession/websession/drivers/redis => ../drivers/redis
)

require (
	github.com/alexedwards/scs/mysqlstore v0.0.0-20250417082927-ab20b3feb5e9
	github.com/alexedwards/scs/postgresstore v0.0.0-20251002162104-209de6e426de
	github.com/alexedwards/scs/redisstore v0.0.0-20251002162104-209de6e426de
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/go-sql-driver/mysql v1.10.1
	github.com/gomodule/redigo v1.8.0
	github.com/gorilla/sessions v1.4.0
	github.com/lib/pq v1.12.3
	github.com/redis/go-redis/v9 v9.22.0
	github.com/websession/websession/conformance v0.0.0
	github.com/websession/websession/core v0.0.0
	github.com/websession/websession/drivers/disk v0.0.0
	github.com/websession/websession/drivers/memory v0.0.0
	github.com/websession/websession/drivers/mysql v0.0.0
	github.com/websession/websession/drivers/postgres v0.0.0
	github.com/websession/websession/drivers/redis v0.0.0
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/gorilla/securecookie v1.1.2 // indirect
	github.com/jmoiron/sqlx v1.4.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
