package conformance

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated sections of README.md")

// exampleTest is the adoption example the README shows: the whole test
// file of the example store, which lives inside this module (so that the
// README's source of truth travels with it) and runs the suite.
const exampleTest = "internal/examplestore/examplestore_test.go"

// TestREADME keeps the README's generated sections equal to the code: the
// subtests and their rules, the benchmarks, the self-test's broken stores,
// and the adoption example (a file that compiles and passes). Run with
// -update to rewrite them.
func TestREADME(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(exampleTest)
	if err != nil {
		t.Fatalf("the README's example is %s: %v", exampleTest, err)
	}
	text := string(b)
	sections := []struct{ name, body string }{
		{"example", "```go\n" + string(example) + "```\n"},
		{"subtests", subtestTable()},
		{"benchmarks", benchmarkTable()},
		{"broken", brokenTable()},
	}
	updated := text
	for _, s := range sections {
		begin, end := "<!-- "+s.name+":begin -->\n", "<!-- "+s.name+":end -->"
		i, j := strings.Index(updated, begin), strings.Index(updated, end)
		if i < 0 || j < i {
			t.Fatalf("README.md lacks the markers of section %q", s.name)
		}
		updated = updated[:i+len(begin)] + s.body + updated[j:]
	}
	if updated == text {
		return
	}
	if *update {
		if err := os.WriteFile("README.md", []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md is out of date with the code: run go test -run TestREADME -update and review the diff")
}

// caughtBy maps each subtest to the broken stores listed as caught by it.
func caughtBy() map[string][]string {
	m := map[string][]string{}
	for _, c := range brokenCases {
		for _, f := range c.fails {
			m[f] = append(m[f], "`"+c.name+"`")
		}
	}
	return m
}

func subtestTable() string {
	caught := caughtBy()
	var b strings.Builder
	b.WriteString("| Subtest | Rule | Needs | Catches (self-test) |\n| --- | --- | --- | --- |\n")
	for _, c := range checks {
		var needs []string
		if c.needs != "" {
			needs = append(needs, "`"+string(c.needs)+"`")
		}
		if c.implements != "" {
			needs = append(needs, "implements `"+c.implements+"`")
		}
		by := strings.Join(caught[c.name], ", ")
		if by == "" {
			by = "manager check"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", c.name, mdEscape(c.rule), strings.Join(needs, ", "), by)
	}
	return b.String()
}

var benchDocs = map[string]string{
	"Load":           "Load of one session-sized record (about 130 bytes).",
	"Update":         "Update of that record with the right Version; afterwards the Version must be N+1.",
	"Touch":          "Touch of that record; afterwards its ATime must be the last one given.",
	"Create":         "Create of new records, in batches deleted off the clock so the store does not grow with N.",
	"CounterRequest": "One request of the web.py counter (load, increment, save) through `Middleware`, served in-process with a reused response writer, so the figure is the library's and the store's cost, not the network's; afterwards the count must be N+1.",
}

func benchmarkTable() string {
	var b strings.Builder
	b.WriteString("| Sub-benchmark | Measures |\n| --- | --- |\n")
	for _, bm := range benchmarks {
		fmt.Fprintf(&b, "| `%s` | %s |\n", bm.name, benchDocs[bm.name])
	}
	return b.String()
}

func brokenTable() string {
	var b strings.Builder
	b.WriteString("| Self-test case | What is wrong | Caught by (meant subtest first) |\n| --- | --- | --- |\n")
	for _, c := range brokenCases {
		what := c.what
		if what == "" {
			what = defects[c.name]
		}
		var by []string
		for _, f := range c.fails {
			by = append(by, "`"+f+"`")
		}
		if slices.Equal(c.alsoMay, everything) {
			by = append(by, "anything")
		} else if len(c.alsoMay) > 0 {
			by = append(by, "maybe "+strings.Join(quoteAll(c.alsoMay), ", "))
		}
		switch {
		case c.refused:
			by = []string{"Run refuses the harness"}
		case len(c.skips) > 0:
			by = []string{"nothing: skipped " + strings.Join(quoteAll(c.skips), ", ")}
		}
		if c.needsRace {
			what += " (needs `-race`)"
		}
		if c.run != "" {
			what += " (only `" + strings.NewReplacer("^", "", "$", "").Replace(c.run) + "` runs)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", c.name, mdEscape(what), strings.Join(by, ", "))
	}
	return b.String()
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return out
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
