package mysql

import (
	"errors"
	"fmt"

	mysqldrv "github.com/go-sql-driver/mysql"
	session "github.com/websession/websession/core"
)

// Server error numbers the store reacts to (the same in MySQL and MariaDB).
const (
	erDupEntry          = 1062 // ER_DUP_ENTRY: Create found the key taken
	erTooBigRowsize     = 1118 // ER_TOO_BIG_ROWSIZE: includes MySQL's "BLOB larger than 10% of the redo log"
	erNetPacketTooLarge = 1153 // ER_NET_PACKET_TOO_LARGE: more than max_allowed_packet
	erDeadlock          = 1213 // ER_LOCK_DEADLOCK: statement rolled back, safe to run again
	erPacketOverflowed  = 1301 // ER_WARN_ALLOWED_PACKET_OVERFLOWED
	erDataTooLong       = 1406 // ER_DATA_TOO_LONG: a strict server refusing to truncate
)

// isServerError reports whether err carries server error number.
func isServerError(err error, number uint16) bool {
	var me *mysqldrv.MySQLError
	return errors.As(err, &me) && me.Number == number
}

// wrap turns a driver error from operation op into the store's error:
// session sentinels where one applies, and always the cause, reachable with
// errors.As(err, &*mysql.MySQLError) or errors.Is(err, context.Canceled).
func wrap(op string, err error) error {
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case erDupEntry:
			return fmt.Errorf("mysql: %s: %w: %w", op, session.ErrExists, err)
		case erTooBigRowsize, erNetPacketTooLarge, erPacketOverflowed, erDataTooLong:
			return fmt.Errorf("mysql: %s: %w: %w", op, session.ErrTooLarge, err)
		}
	}
	return fmt.Errorf("mysql: %s: %w", op, err)
}
