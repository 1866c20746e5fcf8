module github.com/websession/websession/drivers/mysql

go 1.24.0

require (
	github.com/go-sql-driver/mysql v1.10.1
	github.com/jmoiron/sqlx v1.4.0
	github.com/websession/websession/conformance v0.0.0
	github.com/websession/websession/core v0.0.0
)

require filippo.io/edwards25519 v1.2.0 // indirect

replace github.com/websession/websession/core => ../../core

replace github.com/websession/websession/conformance => ../../conformance
