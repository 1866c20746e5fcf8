// Package disk is a session.Store; see the module README.
package disk
