// Package postgres is a session.Store; see the module README.
package postgres
