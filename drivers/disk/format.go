package disk

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	session "github.com/websession/websession/core"
)

// The session file format, version 2. All integers are big-endian.
//
//	offset size  field
//	     0    4  magic "WSES"
//	     4    2  format version (2)
//	     6    2  flags (0; any other value is refused)
//	     8    8  ATime, Unix seconds (int64)
//	    16    4  ATime, nanoseconds (0..999999999)
//	    20    8  Created, Unix seconds (int64)
//	    28    4  Created, nanoseconds
//	    32    8  Version (uint64)
//	    40    4  data length n (uint32, at most maxDataSize)
//	    44    1  owner length m (0..128: session.MaxKeyLen)
//	    45    3  zero
//	    48    m  Owner (a valid key, or nothing)
//	  48+m    4  CRC-32C of bytes 0..48+m-1 (the header)
//	  52+m    n  data
//	52+m+n    4  CRC-32C of everything before
//
// The header has its own checksum so that Cleanup can trust a file's ATime
// and Owner after reading at most maxHeaderSize bytes, without reading its
// data; the trailing checksum covers everything, so a truncated, torn or
// altered file is detected. Seconds and nanoseconds keep a time.Time exact
// over its whole useful range and independent of any time zone.
//
// Version 1, written before owners existed, is version 2 without bytes
// 44..47's owner length (they held the header checksum): its header is the
// first 48 bytes, its data follows at 48, and its Owner is "". Both load;
// every write makes version 2.
const (
	fixedSize     = 48 // the header before the owner
	trailerSize   = 4
	overhead      = fixedSize + trailerSize // of the smallest file, version 1 with no data
	maxHeaderSize = fixedSize + session.MaxKeyLen + 4
	formatV1      = 1
	formatV2      = 2
)

var magic = [4]byte{'W', 'S', 'E', 'S'}

// maxDataSize is the largest Data a record may hold (see
// Store.maxDataSize); a file whose header claims more is corrupt.
const maxDataSize = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is what precedes a session file's data.
type header struct {
	atime, created time.Time
	version        uint64
	dataLen        int
	owner          string
	size           int // of the header, checksum included
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

// encode returns the file content for rec, in format version 2.
func encode(rec session.Record) ([]byte, error) {
	if len(rec.Data) > maxDataSize {
		return nil, tooLarge(len(rec.Data))
	}
	if rec.Owner != "" && !session.ValidKey(rec.Owner) {
		return nil, fmt.Errorf("owner: %w (%d bytes)", session.ErrInvalidKey, len(rec.Owner))
	}
	m, n := len(rec.Owner), len(rec.Data)
	hsize := fixedSize + m + 4
	buf := make([]byte, hsize+n+trailerSize)
	copy(buf[0:4], magic[:])
	binary.BigEndian.PutUint16(buf[4:6], formatV2)
	binary.BigEndian.PutUint16(buf[6:8], 0)
	putTime(buf[8:20], rec.ATime)
	putTime(buf[20:32], rec.Created)
	binary.BigEndian.PutUint64(buf[32:40], rec.Version)
	binary.BigEndian.PutUint32(buf[40:44], uint32(n))
	buf[44] = byte(m)
	copy(buf[fixedSize:], rec.Owner)
	binary.BigEndian.PutUint32(buf[hsize-4:hsize], crc32.Checksum(buf[:hsize-4], castagnoli))
	copy(buf[hsize:], rec.Data)
	end := len(buf) - trailerSize
	binary.BigEndian.PutUint32(buf[end:], crc32.Checksum(buf[:end], castagnoli))
	return buf, nil
}

// decodeHeader checks and decodes the header at the start of b, which may
// hold more (the data) or, if the header is intact, only the header.
func decodeHeader(b []byte) (header, error) {
	if len(b) < fixedSize {
		return header{}, corrupt("%d bytes, shorter than a header", len(b))
	}
	if [4]byte(b[0:4]) != magic {
		return header{}, corrupt("not a session file (bad magic)")
	}
	var h header
	switch v := binary.BigEndian.Uint16(b[4:6]); v {
	case formatV1:
		if got, want := binary.BigEndian.Uint32(b[44:48]), crc32.Checksum(b[:44], castagnoli); got != want {
			return header{}, corrupt("header checksum mismatch")
		}
		h.size = fixedSize
	case formatV2:
		m := int(b[44])
		if m > session.MaxKeyLen || b[45]|b[46]|b[47] != 0 {
			return header{}, corrupt("bad owner length")
		}
		h.size = fixedSize + m + 4
		if len(b) < h.size {
			return header{}, corrupt("%d bytes, shorter than its header", len(b))
		}
		if got, want := binary.BigEndian.Uint32(b[h.size-4:h.size]), crc32.Checksum(b[:h.size-4], castagnoli); got != want {
			return header{}, corrupt("header checksum mismatch")
		}
		if m > 0 {
			h.owner = string(b[fixedSize : fixedSize+m])
			if !session.ValidKey(h.owner) {
				return header{}, corrupt("invalid owner")
			}
		}
	default:
		return header{}, corrupt("unknown format version %d", v)
	}
	if f := binary.BigEndian.Uint16(b[6:8]); f != 0 {
		return header{}, corrupt("unknown flags %#x", f)
	}
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
	if want := h.size + h.dataLen + trailerSize; len(buf) != want {
		return session.Record{}, corrupt("%d bytes, the header says %d", len(buf), want)
	}
	end := len(buf) - trailerSize
	if got, want := binary.BigEndian.Uint32(buf[end:]), crc32.Checksum(buf[:end], castagnoli); got != want {
		return session.Record{}, corrupt("data checksum mismatch")
	}
	return session.Record{
		Data:    buf[h.size:end:end],
		ATime:   h.atime,
		Created: h.created,
		Version: h.version,
		Owner:   h.owner,
	}, nil
}

// maxFileSize is the size of the largest valid file.
const maxFileSize = maxHeaderSize + maxDataSize + trailerSize
