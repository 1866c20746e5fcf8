package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of the store, one per operation that must be atomic.
// Each reads and writes only keys of one hash slot: a record, the
// access-time index of its shard, and the records of that shard (the
// sweep), or one owner's set. Times arrive from the caller; no script calls
// TIME or depends on Redis's clock, except through the absolute expiry
// that WithExpiry asks for.
//
// Record headers are read with GETRANGE of at most headerMax bytes, never
// the data; the layout is in format.go.
//
// On one server (not a Cluster) every script that changes records also
// publishes what it changed on the store's change channel (ARGV ch, ''
// elsewhere), for the client caches of the stores over the same keys (see
// cache.go): 'S' followed by the record's new stamp (its Version and
// ATime bytes, 20) and its key, or 'D' followed by the keys of the
// records it removed, separated by spaces. Messages reach subscribers in
// the order the scripts ran.

// luaCommon is prepended to the scripts that write a record.
//
// sweep deletes at most four records of the shard whose index score is
// below thr (the caller's ATime less the expiry, as a score), with their
// index entries: a bounded share of a cleanup on every write, which keeps
// the index from growing with entries of records Redis has expired. It
// touches records of the shard whose names it builds from the index (the
// same hash slot as the declared keys, which Redis Cluster allows).
const luaCommon = `
local function notify(ch, msg)
  if ch and ch ~= '' then redis.call('PUBLISH', ch, msg) end
end
local function sweep(idx, rec, member, thr, ch)
  if thr == '' then return end
  local base = string.sub(rec, 1, #rec - #member)
  local old = redis.call('ZRANGEBYSCORE', idx, '-inf', '(' .. thr, 'LIMIT', 0, 4)
  for _, m in ipairs(old) do
    redis.call('UNLINK', base .. m)
    redis.call('ZREM', idx, m)
  end
  if #old > 0 then notify(ch, 'D' .. table.concat(old, ' ')) end
end
local function set(rec, value, pxat)
  if pxat == '' then
    redis.call('SET', rec, value)
  else
    redis.call('SET', rec, value, 'PXAT', pxat)
  end
end
local function header(rec)
  local h = redis.call('GETRANGE', rec, 0, HEADERMAX - 1)
  if h == '' then return nil end
  if string.byte(h, 1) ~= 1 or #h < 42 or #h < 42 + string.byte(h, 34) then
    return redis.error_reply('CORRUPT ' .. rec .. ' is not a session record of this store')
  end
  return h
end
`

// createScript inserts a record unless the key exists.
//
//	KEYS: record, index [, owner set]
//	ARGV: record bytes, score, member, pxat or '', sweep threshold or '', owner token, ch
//	returns -1 if the key exists, else the owner set's length (0 without one)
var createScript = newScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
set(KEYS[1], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
notify(ARGV[7], 'S' .. string.sub(ARGV[1], 2, 21) .. ARGV[3])
sweep(KEYS[2], KEYS[1], ARGV[3], ARGV[5], ARGV[7])
if KEYS[3] then
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[6])
  return redis.call('HLEN', KEYS[3])
end
return 0
`)

// Results of updateScript.
const (
	updNotFound   = 0
	updConflict   = 1
	updNeedsOwner = 2
	updDone       = 3
)

// Owner modes of updateScript: how a new owner gets into its set.
const (
	ownerInScript = "k" // KEYS[3] is the new owner's set: add it here (one node)
	ownerAdded    = "p" // the caller added it already, with the token in the record
	ownerNotAdded = "n" // refuse an owner change (updNeedsOwner) and write nothing
)

// updateScript replaces a record if its version is the expected one. It
// keeps Created, and the owner token if the owner stays the same.
//
//	KEYS: record, index [, new owner's set]
//	ARGV: expected version (8 bytes), record bytes, score, member, pxat or '',
//	      sweep threshold or '', owner mode, ch
//	returns {updNotFound}, {updConflict}, {updNeedsOwner},
//	        {updDone, owner set length or 0, Created (12 bytes) [, old owner, old token]}:
//	        the old owner when it changed
var updateScript = newScript(luaCommon + `
local h = header(KEYS[1])
if not h then return {0} end
if type(h) == 'table' then return h end
if string.sub(h, 2, 9) ~= ARGV[1] then return {1} end
local ol = string.byte(h, 34)
local owner = string.sub(h, 35, 34 + ol)
local token = string.sub(h, 35 + ol, 42 + ol)
local rec = ARGV[2]
local nl = string.byte(rec, 34)
local changed = owner ~= string.sub(rec, 35, 34 + nl)
if changed and nl > 0 and ARGV[7] == 'n' then return {2} end
set(KEYS[1], rec, ARGV[5])
redis.call('SETRANGE', KEYS[1], 21, string.sub(h, 22, 33))
if not changed and ol > 0 then redis.call('SETRANGE', KEYS[1], 34 + ol, token) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
notify(ARGV[8], 'S' .. string.sub(rec, 2, 21) .. ARGV[4])
sweep(KEYS[2], KEYS[1], ARGV[4], ARGV[6], ARGV[8])
local n = 0
if changed and nl > 0 and ARGV[7] == 'k' then
  redis.call('HSET', KEYS[3], ARGV[4], string.sub(rec, 35 + nl, 42 + nl))
  n = redis.call('HLEN', KEYS[3])
end
local created = string.sub(h, 22, 33)
if changed and ol > 0 then return {3, n, created, owner, token} end
return {3, n, created}
`)

// touchScript sets a record's ATime, if the record exists.
//
//	KEYS: record, index
//	ARGV: atime (12 bytes), score, member, pxat or '', sweep threshold or '', ch
//	returns 1, or 0 if there is no record
var touchScript = newScript(luaCommon + `
local h = redis.call('GETRANGE', KEYS[1], 0, 8)
if h == '' then return 0 end
if string.byte(h, 1) ~= 1 or #h < 9 then return redis.error_reply('CORRUPT ' .. KEYS[1] .. ' is not a session record of this store') end
redis.call('SETRANGE', KEYS[1], 9, ARGV[1])
if ARGV[4] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
notify(ARGV[6], 'S' .. string.sub(h, 2, 9) .. ARGV[1] .. ARGV[3])
sweep(KEYS[2], KEYS[1], ARGV[3], ARGV[5], ARGV[6])
return 1
`)

// deleteScript removes a record and its index entry.
//
//	KEYS: record, index
//	ARGV: member, ch
//	returns {} or {owner, token} of the deleted record
var deleteScript = newScript(`
local h = redis.call('GETRANGE', KEYS[1], 0, HEADERMAX - 1)
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], 'D' .. ARGV[1]) end
if h == '' then return {} end
redis.call('UNLINK', KEYS[1])
if string.byte(h, 1) == 1 and #h >= 42 then
  local ol = string.byte(h, 34)
  if ol > 0 and #h >= 42 + ol then return {string.sub(h, 35, 34 + ol), string.sub(h, 35 + ol, 42 + ol)} end
end
return {}
`)

// cleanScript deletes the records among the given ones whose ATime is
// before the cutoff, reading each one's exact ATime at the moment of
// deleting it: a record touched since Cleanup chose it stays. Index
// entries whose record is gone (expired by Redis) are dropped.
//
//	KEYS: index, record...
//	ARGV: cutoff (3 numbers, see timeWords), cutoff score, member..., ch
//	returns {deleted, kept, {corrupt key, ...}, owner, token, member, ...}:
//	kept counts the records kept whose score is still the cutoff's (so
//	still in the range Cleanup reads); the keys that hold no record of
//	this store are left alone and their entries dropped; then one triple
//	per deleted record that had an owner
var cleanScript = newScript(`
local hi, lo, ns, cs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {0, 0, 0}
local recs, members, gone, corrupt = {}, {}, {}, {}
local kept = 0
for i = 2, #KEYS do
  local m = ARGV[i + 3]
  local h = redis.call('GETRANGE', KEYS[i], 0, HEADERMAX - 1)
  if h == '' then
    gone[#gone + 1] = m
  elseif string.byte(h, 1) ~= 1 or #h < 42 or #h < 42 + string.byte(h, 34) then
    -- Not a record of this store: left alone, its entry dropped, its
    -- name reported.
    corrupt[#corrupt + 1] = KEYS[i]
    gone[#gone + 1] = m
  else
    local ahi, alo, ans = struct.unpack('>I4I4I4', h, 10)
    if ahi < hi or (ahi == hi and (alo < lo or (alo == lo and ans < ns))) then
      recs[#recs + 1] = KEYS[i]
      members[#members + 1] = m
      local ol = string.byte(h, 34)
      if ol > 0 then
        out[#out + 1] = string.sub(h, 35, 34 + ol)
        out[#out + 1] = string.sub(h, 35 + ol, 42 + ol)
        out[#out + 1] = m
      end
    else
      local sc = redis.call('ZSCORE', KEYS[1], m)
      if sc and tonumber(sc) == cs then kept = kept + 1 end
    end
  end
end
-- One command per step and per 1000 keys, rather than per record.
local function each(list, f)
  for i = 1, #list, 1000 do f(unpack(list, i, math.min(i + 999, #list))) end
end
each(recs, function(...) redis.call('UNLINK', ...) end)
each(members, function(...) redis.call('ZREM', KEYS[1], ...) end)
each(gone, function(...) redis.call('ZREM', KEYS[1], ...) end)
local ch = ARGV[#KEYS + 4]
if ch and ch ~= '' and #members + #gone > 0 then
  local all = {}
  for _, m in ipairs(members) do all[#all + 1] = m end
  for _, m in ipairs(gone) do all[#all + 1] = m end
  redis.call('PUBLISH', ch, 'D' .. table.concat(all, ' '))
end
out[1] = #recs
out[2] = kept
out[3] = corrupt
return out
`)

// ownerAddScript records a session in its owner's set.
//
//	KEYS: owner set
//	ARGV: member, token
//	returns the set's length
var ownerAddScript = newScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HLEN', KEYS[1])
`)

// ownerDelScript removes sessions from their owner's set, each only if
// its entry still has the token given: an entry written since by a newer
// binding of the same session stays.
//
//	KEYS: owner set
//	ARGV: member, token, member, token, ...
//	returns how many it removed
var ownerDelScript = newScript(`
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
`)

var allScripts = []*redis.Script{createScript, updateScript, touchScript, deleteScript, cleanScript, ownerAddScript, ownerDelScript}

func newScript(src string) *redis.Script {
	return redis.NewScript(strings.ReplaceAll(src, "HEADERMAX", strconv.Itoa(headerMax)))
}

// loadScripts loads every script into every node's script cache (a
// ClusterClient loads them on every master), so that the first calls need
// no EVAL, and a script that does not compile fails New.
func loadScripts(ctx context.Context, c redis.UniversalClient) error {
	for _, s := range allScripts {
		if err := s.Load(ctx, c).Err(); err != nil {
			return err
		}
	}
	return nil
}

// isNoScript reports a script missing from a node's cache (a node that
// restarted or was added since loadScripts): the script did not run.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// evalPipelined runs script once per args in one pipeline (one round trip
// per node involved) and returns the commands in order. Commands that
// found the script missing from their node's cache are loaded and run
// again once.
func evalPipelined(ctx context.Context, c redis.UniversalClient, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	pipe := c.Pipeline()
	for i, call := range calls {
		cmds[i] = script.EvalSha(ctx, pipe, call.keys, call.args...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !isScriptLevel(cmds) {
		return cmds, err
	}
	var again []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds, nil
	}
	if err := script.Load(ctx, c).Err(); err != nil {
		return cmds, err
	}
	pipe = c.Pipeline()
	for _, i := range again {
		cmds[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
	}
	_, err := pipe.Exec(ctx)
	if err != nil && !isScriptLevel(cmds) {
		return cmds, err
	}
	return cmds, nil
}

// isScriptLevel reports whether every failed command failed with a Redis
// error reply (which the caller inspects per command) rather than an I/O
// failure of the pipeline.
func isScriptLevel(cmds []*redis.Cmd) bool {
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !isRedisError(err) {
			return false
		}
	}
	return true
}

type scriptCall struct {
	keys []string
	args []any
}

// isRedisError reports an error reply of the server (including redis.Nil),
// as opposed to a failure to reach it.
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
