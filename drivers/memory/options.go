package memory

import "fmt"

// DefaultMaxDataSize is the largest Record.Data the store accepts without
// WithMaxDataSize: far above the manager's own limit
// (session.DefaultMaxDataSize), it only keeps a runaway caller from
// filling the process's memory with one record.
const DefaultMaxDataSize = 16 << 20

// An Option configures a Store. New reports the first invalid one.
type Option func(*options) error

type options struct {
	maxDataSize int
}

// WithMaxDataSize sets the largest Data a record may hold, in bytes
// (default DefaultMaxDataSize). Larger data is refused with an error
// wrapping session.ErrTooLarge, storing nothing.
func WithMaxDataSize(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("max data size must be positive, got %d", n)
		}
		o.maxDataSize = n
		return nil
	}
}
