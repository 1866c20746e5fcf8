module github.com/websession/websession/drivers/disk

go 1.26.0

require (
	github.com/websession/websession/conformance v0.0.0
	github.com/websession/websession/core v0.0.0
	golang.org/x/sys v0.50.0
)

replace github.com/websession/websession/core => ../../core

replace github.com/websession/websession/conformance => ../../conformance
