module github.com/websession/websession/drivers/redis

go 1.24.0

replace github.com/websession/websession/core => ../../core

replace github.com/websession/websession/conformance => ../../conformance

require (
	github.com/redis/go-redis/v9 v9.22.0
	github.com/websession/websession/conformance v0.0.0
	github.com/websession/websession/core v0.0.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.41.0 // indirect
)
