package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	session "github.com/websession/websession/core"
)

// ErrCorrupt reports a key under the store's prefix that does not hold a
// record of this store: written by something else, or by a newer version
// of this driver. The store neither reads nor overwrites it; delete the
// key (its name is in the error) or give the store a prefix of its own.
var ErrCorrupt = errors.New("redis: malformed session record")

// errClosed is what every call after Close returns.
var errClosed = fmt.Errorf("redis: %w", session.ErrClosed)

// wrap turns a failure of operation op into the store's error,
// "redis: <op>: <cause>", keeping the cause for errors.Is and errors.As
// (go-redis's redis.Error, a *net.OpError, context.Canceled). When ctx is
// done but the client reported something else (a closed connection, a
// read timeout of its own), the context's error is wrapped too, so that
// errors.Is(err, context.Canceled) holds for a cancelled call whatever the
// client made of it.
//
// A script's refusal to touch a key that holds no record of this store
// (an error reply starting "CORRUPT") wraps ErrCorrupt as well.
func wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redis: %s: %w: %w", op, cerr, err)
	}
	if strings.HasPrefix(err.Error(), "CORRUPT ") {
		return fmt.Errorf("redis: %s: %w: %w", op, ErrCorrupt, err)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// invalidKey refuses a key or owner outside session.ValidKey.
func invalidKey(op, what string) error {
	return fmt.Errorf("redis: %s: %s: %w", op, what, session.ErrInvalidKey)
}
