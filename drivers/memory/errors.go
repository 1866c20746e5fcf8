package memory

import (
	"context"
	"fmt"

	session "github.com/websession/websession/core"
)

// opError gives an error of operation op the driver's shape,
// "memory: <op>: <cause>", wrapping cause.
func opError(op string, cause error) error {
	return fmt.Errorf("memory: %s: %w", op, cause)
}

// begin checks what every call checks first: the context, then the key.
func begin(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return opError(op, err)
	}
	if !session.ValidKey(key) {
		return opError(op, fmt.Errorf("%w: %q", session.ErrInvalidKey, key))
	}
	return nil
}
