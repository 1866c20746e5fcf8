module github.com/websession/websession/examples

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/go-sql-driver/mysql v1.10.1
	github.com/lib/pq v1.12.3
	github.com/websession/websession/core v0.0.0
	github.com/websession/websession/drivers/disk v0.0.0
	github.com/websession/websession/drivers/memory v0.0.0
	github.com/websession/websession/drivers/mysql v0.0.0
	github.com/websession/websession/drivers/postgres v0.0.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/redis/go-redis/v9 v9.22.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/jmoiron/sqlx v1.4.0 // indirect
	github.com/websession/websession/drivers/redis v0.0.0
	golang.org/x/sys v0.50.0 // indirect
)

replace (
	github.com/websession/websession/conformance => ../conformance
	github.com/websession/websession/core => ../core
	github.com/websession/websession/drivers/disk => ../drivers/disk
	github.com/websession/websession/drivers/memory => ../drivers/memory
	github.com/websession/websession/drivers/mysql => ../drivers/mysql
	github.com/websession/websession/drivers/postgres => ../drivers/postgres
)

replace github.com/websession/websession/drivers/redis => ../drivers/redis
