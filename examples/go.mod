module github.com/websession/websession/examples

go 1.24.0

require (
	github.com/websession/websession/core v0.0.0
	github.com/websession/websession/drivers/memory v0.0.0
)

replace (
	github.com/websession/websession/core => ../core
	github.com/websession/websession/drivers/memory => ../drivers/memory
)
