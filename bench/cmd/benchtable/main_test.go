package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/websession/websession/bench
BenchmarkSessions/backend=ours-memory/scenario=ReadOnly-2   	  743709	      1000 ns/op	         1.000 storecalls/op	         0 storewrites/op	    1320 B/op	      11 allocs/op
BenchmarkSessions/backend=ours-memory/scenario=ReadOnly-2   	  743709	      3000 ns/op	         1.000 storecalls/op	         0 storewrites/op	    1320 B/op	      11 allocs/op
BenchmarkSessions/backend=ours-memory/scenario=ReadOnly-2   	  743709	      2000 ns/op	         1.000 storecalls/op	         0 storewrites/op	    1320 B/op	      11 allocs/op
BenchmarkSessions/backend=scs-memstore/scenario=ReadOnly-2  	   68472	      9000 ns/op	         1.000 storecalls/op	         0 storewrites/op	    9096 B/op	     199 allocs/op
BenchmarkSessions/backend=scs-memstore/scenario=ReadOnly-2  	   68472	     11000 ns/op	         1.000 storecalls/op	         0 storewrites/op	    9096 B/op	     199 allocs/op
BenchmarkSessions/backend=ours-postgres/scenario=Counter-2  	    4131	    384347 ns/op	         2.000 roundtrips/op	         2.000 storecalls/op	         1.000 storewrites/op	    3687 B/op	      70 allocs/op
BenchmarkOther-2 	 1 	 5 ns/op
PASS
`

func TestParseAndMedian(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.order) != 3 {
		t.Fatalf("%d sub-benchmarks, want 3: %v", len(res.order), res.order)
	}
	for _, c := range []struct {
		k    key
		unit string
		want float64
		n    int
	}{
		{key{"ours-memory", "ReadOnly"}, "ns/op", 2000, 3},       // odd count: the middle one
		{key{"scs-memstore", "ReadOnly"}, "ns/op", 10000, 2},     // even count: the mean of the middle two
		{key{"ours-postgres", "Counter"}, "roundtrips/op", 2, 1}, // custom metrics are kept
		{key{"ours-memory", "ReadOnly"}, "roundtrips/op", 0, 0},  // absent
	} {
		got, n := res.median(c.k, c.unit)
		if got != c.want || n != c.n {
			t.Errorf("median(%v, %s) = %v over %d, want %v over %d", c.k, c.unit, got, n, c.want, c.n)
		}
	}
}

func TestParseName(t *testing.T) {
	for name, want := range map[string]key{
		"BenchmarkSessions/backend=ours-disk/scenario=CounterParallel-16": {"ours-disk", "CounterParallel"},
		"BenchmarkSessions/backend=none/scenario=Untouched":               {"none", "Untouched"},
	} {
		if got, ok := parseName(name); !ok || got != want {
			t.Errorf("parseName(%q) = %v, %v; want %v", name, got, ok, want)
		}
	}
	for _, bad := range []string{"BenchmarkSessions/backend=x", "BenchmarkSessions/foo=x/scenario=y", "BenchmarkSessions/backend=/scenario=y"} {
		if _, ok := parseName(bad); ok {
			t.Errorf("parseName(%q) accepted", bad)
		}
	}
}

func TestTargets(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeTargets(&out, res)
	got := out.String()
	for _, want := range []string{
		// 10000 / 2000 = 5: exactly the bound, met.
		"| memory ReadOnly: scs-memstore time / ours | 10000 vs 2000 ns/op | 5 | ≥ 5 | **met** |",
		// 11 / 199 allocs is below a sixth.
		"| memory ReadOnly: ours allocs / scs-memstore | 11.0 vs 199 allocs/op | 0.0553 | ≤ 0.167 | **met** |",
		"| postgres Counter round trips, ours | 2.00 roundtrips/op | | = 2.00 | **met** |",
		"| ours-memory ReadOnly: store writes per request | 0 storewrites/op | | = 0 | **met** |",
		// Nothing measured for Counter on memory.
		"| memory Counter: scs-memstore time / ours | no data for scs-memstore/Counter | | | not measured |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q; got:\n%s", want, got)
		}
	}

	// A missed bound says so.
	missed := strings.Replace(sample, "9000 ns/op", "1000 ns/op", 1)
	missed = strings.Replace(missed, "11000 ns/op", "1000 ns/op", 1)
	res, err = parse(strings.NewReader(missed))
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	writeTargets(&out, res)
	if want := "| memory ReadOnly: scs-memstore time / ours | 1000 vs 2000 ns/op | 0.5 | ≥ 5 | **missed** |"; !strings.Contains(out.String(), want) {
		t.Errorf("targets lack %q; got:\n%s", want, out.String())
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	if _, err := parse(strings.NewReader("BenchmarkSessions/backend=a/scenario=b-2 1 abc ns/op\n")); err == nil {
		t.Error("a non-numeric value was accepted")
	}
}
