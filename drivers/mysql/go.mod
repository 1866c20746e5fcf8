module github.com/websession/websession/drivers/mysql

go 1.24

require github.com/websession/websession/core v0.0.0

replace github.com/websession/websession/core => ../../core
