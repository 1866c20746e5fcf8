module github.com/websession/websession/drivers/postgres

go 1.24

require (
	github.com/jmoiron/sqlx v1.4.0
	github.com/lib/pq v1.12.3
	github.com/websession/websession/conformance v0.0.0
	github.com/websession/websession/core v0.0.0
)

replace (
	github.com/websession/websession/conformance => ../../conformance
	github.com/websession/websession/core => ../../core
)
