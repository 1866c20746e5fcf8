package redisstore

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	session "github.com/websession/websession/core"
)

// A record is one Redis string:
//
//	offset  size  field
//	0       1     format, formatV1
//	1       8     Version, big-endian
//	9       12    ATime: Unix seconds (big-endian, sign bit flipped) and nanoseconds (big-endian uint32)
//	21      12    Created, the same way
//	33      1     L, the length of Owner (0 to session.MaxKeyLen)
//	34      L     Owner
//	34+L    8     owner token (see owner.go); zero without an owner
//	42+L    rest  Data
//
// Flipping the sign bit of the seconds makes the byte order of a time its
// chronological order. The scripts read the header with GETRANGE and never
// the data, and patch fields in place with SETRANGE, so a Touch writes 12
// bytes whatever the size of the session.
const (
	formatV1 = 1

	offVersion  = 1
	offATime    = 9
	offCreated  = 21
	offOwnerLen = 33
	offOwner    = 34
	timeLen     = 12
	tokenLen    = 8

	// headerMax is the longest header: the most GETRANGE reads.
	headerMax = offOwner + session.MaxKeyLen + tokenLen
)

// putTime writes t at b[:12] in the record's time encoding.
func putTime(b []byte, t time.Time) {
	binary.BigEndian.PutUint64(b, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
}

// getTime reads a time written by putTime.
func getTime(b []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	ns := int64(binary.BigEndian.Uint32(b[8:]))
	return time.Unix(sec, ns).UTC()
}

// timeWords splits t into the three numbers the scripts compare: the high
// and low 32 bits of the flipped seconds and the nanoseconds, each exact in
// a Lua number (a float64), so that Lua compares times to the nanosecond.
func timeWords(t time.Time) (hi, lo, ns string) {
	var b [timeLen]byte
	putTime(b[:], t)
	return strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[0:])), 10),
		strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[4:])), 10),
		strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[8:])), 10)
}

// maxScore bounds index scores: a sorted set's score is a float64, exact
// for integers up to 2^53.
const maxScore = 1 << 53

// score is t's score in an access-time index: whole microseconds since the
// Unix epoch, rounded down (toward the past), clamped to ±2^53 µs (about
// the years 1685 to 2255). It is monotonic in t, so score(a) < score(c)
// implies a < c, and a < c implies score(a) <= score(c): the index finds
// every candidate and the scripts decide on the exact time.
func score(t time.Time) int64 {
	sec, ns := t.Unix(), int64(t.Nanosecond())
	const limit = maxScore / 1_000_000
	if sec > limit {
		return maxScore
	}
	if sec < -limit {
		return -maxScore
	}
	return max(-maxScore, min(maxScore, sec*1_000_000+ns/1_000))
}

// unixMilli is t in milliseconds since the Unix epoch, rounded down,
// clamped to what Redis accepts as an absolute expiry (at least 1, which
// is in the past, so the key expires at once; at most the end of year
// 9999).
func unixMilli(t time.Time) int64 {
	const maxMilli = 253402300799999 // 9999-12-31T23:59:59.999Z
	sec := t.Unix()
	if sec <= 0 {
		return 1
	}
	if sec >= maxMilli/1000 {
		return maxMilli
	}
	return sec*1000 + int64(t.Nanosecond())/1e6
}

// encode returns rec as a stored record with the given version and token,
// in one allocation.
func encode(rec session.Record, version uint64, token uint64) []byte {
	l := len(rec.Owner)
	b := make([]byte, offOwner+l+tokenLen+len(rec.Data))
	b[0] = formatV1
	binary.BigEndian.PutUint64(b[offVersion:], version)
	putTime(b[offATime:], rec.ATime)
	putTime(b[offCreated:], rec.Created)
	b[offOwnerLen] = byte(l)
	copy(b[offOwner:], rec.Owner)
	binary.BigEndian.PutUint64(b[offOwner+l:], token)
	copy(b[offOwner+l+tokenLen:], rec.Data)
	return b
}

// versionBytes is v as stored, for the scripts' compare-and-swap.
func versionBytes(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// timeBytes is t as stored, for Touch.
func timeBytes(t time.Time) []byte {
	b := make([]byte, timeLen)
	putTime(b, t)
	return b
}

// decode parses a stored record. data is a fresh copy that the caller
// owns; the returned Data is a slice of it.
func decode(data []byte) (session.Record, error) {
	if len(data) < offOwner+tokenLen || data[0] != formatV1 {
		return session.Record{}, fmt.Errorf("%w: %d bytes, format %d", ErrCorrupt, len(data), firstByte(data))
	}
	l := int(data[offOwnerLen])
	if l > session.MaxKeyLen || len(data) < offOwner+l+tokenLen {
		return session.Record{}, fmt.Errorf("%w: owner length %d in %d bytes", ErrCorrupt, l, len(data))
	}
	return session.Record{
		Version: binary.BigEndian.Uint64(data[offVersion:]),
		ATime:   getTime(data[offATime:]),
		Created: getTime(data[offCreated:]),
		Owner:   string(data[offOwner : offOwner+l]),
		Data:    data[offOwner+l+tokenLen : len(data) : len(data)],
	}, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// The owner's length is one byte.
const _ = uint8(session.MaxKeyLen)
