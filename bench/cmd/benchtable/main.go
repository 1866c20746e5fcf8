// Command benchtable turns the output of the bench module's benchmarks
// (go test -bench, any -count) into the tables of bench/README.md: the
// median of every metric per backend and scenario, and the targets of the
// project's issue with the ratios computed from those medians, each marked
// met or missed.
//
//	go run ./cmd/benchtable results.txt [more.txt ...]   # the files' samples pooled
//
// benchstat gives the confidence intervals and significance of each
// comparison; this command only arranges medians and applies the targets,
// so that the verdicts are computed, not typed.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtable results.txt...")
		os.Exit(2)
	}
	var readers []io.Reader
	for _, name := range os.Args[1:] {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		readers = append(readers, f)
	}
	res, err := parse(io.MultiReader(readers...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(res.order) == 0 {
		fmt.Fprintln(os.Stderr, "no BenchmarkSessions or BenchmarkDiskWrites results in", strings.Join(os.Args[1:], ", "))
		os.Exit(1)
	}
	writeMedians(os.Stdout, res)
	fmt.Fprintln(os.Stdout)
	writeTargets(os.Stdout, res)
}

// key names one sub-benchmark.
type key struct{ backend, scenario string }

// results holds every sample of every metric, by sub-benchmark and unit.
type results struct {
	order   []key
	samples map[key]map[string][]float64
}

// parse reads go test -bench output, keeping the BenchmarkSessions and
// BenchmarkDiskWrites lines (their backend and scenario names do not
// overlap).
func parse(r io.Reader) (*results, error) {
	res := &results{samples: map[key]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !(strings.HasPrefix(fields[0], "BenchmarkSessions/") || strings.HasPrefix(fields[0], "BenchmarkDiskWrites/")) {
			continue
		}
		k, ok := parseName(fields[0])
		if !ok {
			return nil, fmt.Errorf("line %d: unexpected benchmark name %q", line, fields[0])
		}
		m := res.samples[k]
		if m == nil {
			m = map[string][]float64{}
			res.samples[k] = m
			res.order = append(res.order, k)
		}
		// fields[1] is the iteration count; then value unit pairs.
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q is not a number: %v", line, fields[i], err)
			}
			m[fields[i+1]] = append(m[fields[i+1]], v)
		}
	}
	return res, sc.Err()
}

// parseName splits Benchmark<Name>/backend=B/scenario=S-P.
func parseName(name string) (key, bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 {
		return key{}, false
	}
	b, okB := strings.CutPrefix(parts[1], "backend=")
	s, okS := strings.CutPrefix(parts[2], "scenario=")
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		if _, err := strconv.Atoi(s[i+1:]); err == nil {
			s = s[:i] // the GOMAXPROCS suffix
		}
	}
	return key{b, s}, okB && okS && b != "" && s != ""
}

// median returns the median of the samples of unit for k, and how many
// there are (0 if none).
func (r *results) median(k key, unit string) (float64, int) {
	v := slices.Clone(r.samples[k][unit])
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2], n
	}
	return (v[n/2-1] + v[n/2]) / 2, n
}

func (r *results) has(k key, unit string) bool { return len(r.samples[k][unit]) > 0 }

var columns = []struct{ unit, title string }{
	{"ns/op", "ns/op"},
	{"B/op", "B/op"},
	{"allocs/op", "allocs/op"},
	{"storecalls/op", "store calls/op"},
	{"storewrites/op", "of which writes"},
	{"roundtrips/op", "round trips/op"},
}

func writeMedians(w io.Writer, r *results) {
	fmt.Fprint(w, "| backend | scenario |")
	for _, c := range columns {
		fmt.Fprintf(w, " %s |", c.title)
	}
	fmt.Fprint(w, " runs |\n|---|---|")
	for range columns {
		fmt.Fprint(w, "--:|")
	}
	fmt.Fprintln(w, "--:|")
	for _, k := range r.order {
		fmt.Fprintf(w, "| %s | %s |", k.backend, k.scenario)
		for _, c := range columns {
			if !r.has(k, c.unit) {
				fmt.Fprint(w, " |")
				continue
			}
			m, _ := r.median(k, c.unit)
			fmt.Fprintf(w, " %s |", format(m))
		}
		_, n := r.median(k, "ns/op")
		fmt.Fprintf(w, " %d |\n", n)
	}
}

// format prints a median with the precision it deserves.
func format(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// A target compares medians: ratio = num/den (of unit), met if ratio
// satisfies the bound.
type target struct {
	what     string
	num, den key
	unit     string
	bound    float64
	atLeast  bool // ratio >= bound; otherwise ratio <= bound
	exact    bool // num's median must equal bound (den unused)
	judgedOn string
}

func targets() []target {
	k := func(b, s string) key { return key{b, s} }
	ts := []target{
		{what: "memory ReadOnly: scs-memstore time / ours", num: k("scs-memstore", "ReadOnly"), den: k("ours-memory", "ReadOnly"), unit: "ns/op", bound: 5, atLeast: true},
		{what: "memory ReadOnly: ours allocs / scs-memstore", num: k("ours-memory", "ReadOnly"), den: k("scs-memstore", "ReadOnly"), unit: "allocs/op", bound: 1.0 / 6},
		{what: "memory Counter: scs-memstore time / ours", num: k("scs-memstore", "Counter"), den: k("ours-memory", "Counter"), unit: "ns/op", bound: 5, atLeast: true},
		{what: "memory Counter: ours allocs / scs-memstore", num: k("ours-memory", "Counter"), den: k("scs-memstore", "Counter"), unit: "allocs/op", bound: 1.0 / 6},
		{what: "Untouched over HTTP: ours-memory time / none (the target: within 10%)", num: k("ours-memory", "UntouchedHTTP"), den: k("none", "UntouchedHTTP"), unit: "ns/op", bound: 1.10},
		{what: "Untouched in-process: ours-memory time / none (reference, not the target)", num: k("ours-memory", "Untouched"), den: k("none", "Untouched"), unit: "ns/op", bound: 1.10, judgedOn: "reference"},
		{what: "disk ReadOnly: gorilla-filesystem time / ours-disk", num: k("gorilla-filesystem", "ReadOnly"), den: k("ours-disk", "ReadOnly"), unit: "ns/op", bound: 5, atLeast: true},
		{what: "disk Counter: ours-disk time / gorilla-filesystem", num: k("ours-disk", "Counter"), den: k("gorilla-filesystem", "Counter"), unit: "ns/op", bound: 0.7},
		{what: "disk New: ours-disk time / gorilla-filesystem", num: k("ours-disk", "New"), den: k("gorilla-filesystem", "New"), unit: "ns/op", bound: 1},
	}
	// The read cache never makes a write slower.
	for _, sc := range []string{"Counter", "New", "CounterParallel", "Create", "Update", "CreateDurable", "UpdateDurable"} {
		ts = append(ts, target{what: "disk " + sc + ": with the cache / without", num: k("ours-disk", sc), den: k("ours-disk-nocache", sc), unit: "ns/op", bound: 1})
	}
	// Our writes within 1.3x of the floor (BenchmarkDiskWrites).
	for _, b := range []string{"ours-disk-nocache", "ours-disk"} {
		for _, sc := range []string{"Create", "Update", "CreateDurable", "UpdateDurable"} {
			ts = append(ts, target{what: "disk " + sc + ": " + b + " time / floor", num: k(b, sc), den: k("floor", sc), unit: "ns/op", bound: 1.3})
		}
	}
	for _, db := range []string{"postgres", "mysql"} {
		ours, theirs := "ours-"+db, "scs-"+db
		ts = append(ts,
			target{what: db + " ReadOnly round trips, ours", num: k(ours, "ReadOnly"), unit: "roundtrips/op", bound: 1, exact: true},
			target{what: db + " New round trips, ours", num: k(ours, "New"), unit: "roundtrips/op", bound: 1, exact: true},
			target{what: db + " Counter round trips, ours", num: k(ours, "Counter"), unit: "roundtrips/op", bound: 2, exact: true},
			target{what: db + " ReadOnly round trips, scs (for reference)", num: k(theirs, "ReadOnly"), unit: "roundtrips/op", bound: 2, exact: true, judgedOn: "reference"},
			target{what: db + " Counter round trips, scs (for reference)", num: k(theirs, "Counter"), unit: "roundtrips/op", bound: 4, exact: true, judgedOn: "reference"},
			target{what: db + " ReadOnly: ours time / scs", num: k(ours, "ReadOnly"), den: k(theirs, "ReadOnly"), unit: "ns/op", bound: 0.6},
		)
	}
	ts = append(ts,
		target{what: "redis ReadOnly round trips, ours", num: k("ours-redis", "ReadOnly"), unit: "roundtrips/op", bound: 1, exact: true},
		target{what: "redis New round trips, ours", num: k("ours-redis", "New"), unit: "roundtrips/op", bound: 1, exact: true},
		target{what: "redis Counter round trips, ours", num: k("ours-redis", "Counter"), unit: "roundtrips/op", bound: 2, exact: true},
		target{what: "redis ReadOnly round trips, scs (for reference)", num: k("scs-redis", "ReadOnly"), unit: "roundtrips/op", bound: 1, exact: true, judgedOn: "reference"},
		target{what: "redis Counter round trips, scs (for reference)", num: k("scs-redis", "Counter"), unit: "roundtrips/op", bound: 2, exact: true, judgedOn: "reference"},
		target{what: "redis ReadOnly: ours time / scs", num: k("ours-redis", "ReadOnly"), den: k("scs-redis", "ReadOnly"), unit: "ns/op", bound: 0.7},
		target{what: "redis Counter: ours time / scs", num: k("ours-redis", "Counter"), den: k("scs-redis", "Counter"), unit: "ns/op", bound: 0.7},
		target{what: "redis ReadOnly: ours allocs / scs", num: k("ours-redis", "ReadOnly"), den: k("scs-redis", "ReadOnly"), unit: "allocs/op", bound: 0.25},
		target{what: "redis Counter: ours allocs / scs", num: k("ours-redis", "Counter"), den: k("scs-redis", "Counter"), unit: "allocs/op", bound: 0.25},
		// With the client cache (WithClientCache): no round trip for a
		// read the cache holds.
		target{what: "redis ReadOnly round trips, ours with the client cache", num: k("ours-redis-cache", "ReadOnly"), unit: "roundtrips/op", bound: 0, exact: true},
		target{what: "redis New round trips, ours with the client cache", num: k("ours-redis-cache", "New"), unit: "roundtrips/op", bound: 1, exact: true},
		target{what: "redis ReadOnly: ours with the client cache, time / scs", num: k("ours-redis-cache", "ReadOnly"), den: k("scs-redis", "ReadOnly"), unit: "ns/op", bound: 0.7},
		target{what: "redis Counter: ours with the client cache, time / scs", num: k("ours-redis-cache", "Counter"), den: k("scs-redis", "Counter"), unit: "ns/op", bound: 0.7},
		target{what: "redis ReadOnly: ours with the client cache, allocs / scs", num: k("ours-redis-cache", "ReadOnly"), den: k("scs-redis", "ReadOnly"), unit: "allocs/op", bound: 0.25},
		target{what: "redis Counter: ours with the client cache, allocs / scs", num: k("ours-redis-cache", "Counter"), den: k("scs-redis", "Counter"), unit: "allocs/op", bound: 0.25},
	)
	for _, b := range []string{"ours-memory", "ours-disk", "ours-disk-nocache", "ours-postgres", "ours-mysql", "ours-redis", "ours-redis-cache"} {
		for _, s := range []string{"ReadOnly", "ReadOnlyParallel"} {
			ts = append(ts, target{what: b + " " + s + ": store writes per request", num: k(b, s), unit: "storewrites/op", bound: 0, exact: true})
		}
	}
	return ts
}

func writeTargets(w io.Writer, r *results) {
	fmt.Fprintln(w, "| target | medians | ratio | bound | verdict |")
	fmt.Fprintln(w, "|---|---|--:|--:|---|")
	for _, t := range targets() {
		n, nn := r.median(t.num, t.unit)
		if nn == 0 {
			fmt.Fprintf(w, "| %s | no data for %s/%s | | | not measured |\n", t.what, t.num.backend, t.num.scenario)
			continue
		}
		if t.exact {
			verdict := verdictOf(n == t.bound, t.judgedOn)
			fmt.Fprintf(w, "| %s | %s %s | | = %s | %s |\n", t.what, format(n), t.unit, format(t.bound), verdict)
			continue
		}
		d, dn := r.median(t.den, t.unit)
		if dn == 0 || d == 0 {
			fmt.Fprintf(w, "| %s | no data for %s/%s | | | not measured |\n", t.what, t.den.backend, t.den.scenario)
			continue
		}
		ratio := n / d
		ok, op := ratio <= t.bound, "≤"
		if t.atLeast {
			ok, op = ratio >= t.bound, "≥"
		}
		fmt.Fprintf(w, "| %s | %s vs %s %s | %.3g | %s %.3g | %s |\n", t.what, format(n), format(d), t.unit, ratio, op, t.bound, verdictOf(ok, t.judgedOn))
	}
}

func verdictOf(ok bool, judgedOn string) string {
	switch {
	case judgedOn != "" && ok:
		return "(" + judgedOn + ") within"
	case judgedOn != "":
		return "(" + judgedOn + ") outside"
	case ok:
		return "**met**"
	}
	return "**missed**"
}
