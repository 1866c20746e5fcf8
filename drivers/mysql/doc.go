// Package mysql is a session.Store; see the module README.
package mysql
