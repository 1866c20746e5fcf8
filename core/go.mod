module github.com/websession/websession/core

go 1.24
