#!/bin/sh
# alternate.sh runs benchmarks in alternation: for each of ROUNDS rounds,
# one count of each backend, each in a process of its own, appended to OUT.
# Backends compared in one go -count run take turns only at the end of all
# counts of the previous one; on a file system whose speed drifts as files
# accumulate or age (creating inodes, see README.md), that order decides the
# ratios. Alternating spreads the drift over every backend alike.
#
#	./alternate.sh OUT ROUNDS BENCH-PATTERN BACKEND...
#
# BENCH-PATTERN is a -bench pattern with %s where the backend goes, e.g.
#
#	./alternate.sh disk.txt 5 'Sessions/backend=%s$/scenario=(ReadOnly|Counter|New)$' ours-disk ours-disk-nocache gorilla-filesystem
#	./alternate.sh floor.txt 5 'DiskWrites/backend=%s$/' floor ours-disk-nocache ours-disk
#	go run ./cmd/benchtable disk.txt floor.txt
#
# TMPDIR chooses the file system the disk backends write to.
set -eu
out=$1 rounds=$2 pattern=$3
shift 3
bin=$(mktemp -d)/bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" .
i=0
while [ "$i" -lt "$rounds" ]; do
	for backend in "$@"; do
		# shellcheck disable=SC2059 # the pattern is ours, with one %s
		"$bin" -test.run '^$' -test.bench "$(printf "$pattern" "$backend")" -test.benchmem -test.count 1 -test.timeout 30m >>"$out"
	done
	i=$((i + 1))
done
