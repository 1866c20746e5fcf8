package disk

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	session "github.com/websession/websession/core"
)

// The session file format, version 1. All integers are big-endian.
//
//	offset size  field
//	     0    4  magic "WSES"
//	     4    2  format version (1)
//	     6    2  flags (0; any other value is refused)
//	     8    8  ATime, Unix seconds (int64)
//	    16    4  ATime, nanoseconds (0..999999999)
//	    20    8  Created, Unix seconds (int64)
//	    28    4  Created, nanoseconds
//	    32    8  Version (uint64)
//	    40    4  data length n (uint32, at most maxDataSize)
//	    44    4  CRC-32C of bytes 0..43 (the header)
//	    48    n  data
//	  48+n    4  CRC-32C of bytes 0..48+n-1 (header and data)
//
// The header has its own checksum so that Cleanup can trust a file's ATime
// after reading 48 bytes, without reading its data; the trailing checksum
// covers everything, so a truncated, torn or altered file is detected.
// Seconds and nanoseconds keep a time.Time exact over its whole useful
// range and independent of any time zone.
const (
	headerSize  = 48
	trailerSize = 4
	overhead    = headerSize + trailerSize
	formatV1    = 1
)

var magic = [4]byte{'W', 'S', 'E', 'S'}

// maxDataSize is the largest Data a record may hold (see
// Store.maxDataSize); a file whose header claims more is corrupt.
const maxDataSize = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the fixed part of a session file.
type header struct {
	atime, created time.Time
	version        uint64
	dataLen        int
}

// putTime stores t as Unix seconds and nanoseconds at b[0:12]. Every
// time.Time round-trips exactly: time.Unix inverts Time.Unix for all
// values, even where the seconds wrap around int64.
func putTime(b []byte, t time.Time) {
	binary.BigEndian.PutUint64(b[0:8], uint64(t.Unix()))
	binary.BigEndian.PutUint32(b[8:12], uint32(t.Nanosecond()))
}

func getTime(b []byte) (time.Time, error) {
	sec := int64(binary.BigEndian.Uint64(b[0:8]))
	nsec := binary.BigEndian.Uint32(b[8:12])
	if nsec >= 1e9 {
		return time.Time{}, corrupt("nanoseconds out of range")
	}
	return time.Unix(sec, int64(nsec)).UTC(), nil
}

// encode returns the file content for rec.
func encode(rec session.Record) ([]byte, error) {
	if len(rec.Data) > maxDataSize {
		return nil, tooLarge(len(rec.Data))
	}
	n := len(rec.Data)
	buf := make([]byte, overhead+n)
	copy(buf[0:4], magic[:])
	binary.BigEndian.PutUint16(buf[4:6], formatV1)
	binary.BigEndian.PutUint16(buf[6:8], 0)
	putTime(buf[8:20], rec.ATime)
	putTime(buf[20:32], rec.Created)
	binary.BigEndian.PutUint64(buf[32:40], rec.Version)
	binary.BigEndian.PutUint32(buf[40:44], uint32(n))
	copy(buf[headerSize:], rec.Data)
	seal(buf)
	return buf, nil
}

// seal writes both checksums of an encoded file.
func seal(buf []byte) {
	binary.BigEndian.PutUint32(buf[44:48], crc32.Checksum(buf[:44], castagnoli))
	end := len(buf) - trailerSize
	binary.BigEndian.PutUint32(buf[end:], crc32.Checksum(buf[:end], castagnoli))
}

// setATime rewrites the ATime of a valid encoded file in place.
func setATime(buf []byte, t time.Time) {
	putTime(buf[8:20], t)
	seal(buf)
}

// decodeHeader checks and decodes the first headerSize bytes of a file.
func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, corrupt("%d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	if [4]byte(b[0:4]) != magic {
		return header{}, corrupt("not a session file (bad magic)")
	}
	if v := binary.BigEndian.Uint16(b[4:6]); v != formatV1 {
		return header{}, corrupt("unknown format version %d", v)
	}
	if got, want := binary.BigEndian.Uint32(b[44:48]), crc32.Checksum(b[:44], castagnoli); got != want {
		return header{}, corrupt("header checksum mismatch")
	}
	if f := binary.BigEndian.Uint16(b[6:8]); f != 0 {
		return header{}, corrupt("unknown flags %#x", f)
	}
	var h header
	var err error
	if h.atime, err = getTime(b[8:20]); err != nil {
		return header{}, err
	}
	if h.created, err = getTime(b[20:32]); err != nil {
		return header{}, err
	}
	h.version = binary.BigEndian.Uint64(b[32:40])
	n := binary.BigEndian.Uint32(b[40:44])
	if n > maxDataSize {
		return header{}, corrupt("data length %d above the maximum %d", n, maxDataSize)
	}
	h.dataLen = int(n)
	return h, nil
}

// decode checks a whole file and returns its record. The record's Data
// aliases buf.
func decode(buf []byte) (session.Record, error) {
	h, err := decodeHeader(buf)
	if err != nil {
		return session.Record{}, err
	}
	if want := overhead + h.dataLen; len(buf) != want {
		return session.Record{}, corrupt("%d bytes, the header says %d", len(buf), want)
	}
	end := len(buf) - trailerSize
	if got, want := binary.BigEndian.Uint32(buf[end:]), crc32.Checksum(buf[:end], castagnoli); got != want {
		return session.Record{}, corrupt("data checksum mismatch")
	}
	return session.Record{
		Data:    buf[headerSize:end:end],
		ATime:   h.atime,
		Created: h.created,
		Version: h.version,
	}, nil
}

// maxFileSize is the size of the largest valid file.
const maxFileSize = overhead + maxDataSize
