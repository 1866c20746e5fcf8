module github.com/websession/websession/examples

go 1.24
