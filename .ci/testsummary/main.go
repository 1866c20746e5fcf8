// Command testsummary turns `go test -json` into go test's usual terse
// output, and remembers every skipped test with its reason, so that
// `make test` can end with a summary of what did not run and why, without
// -v. It is run by the Makefile, outside any module:
//
//	go test -json ./... | testsummary -skips FILE    # filter one module's run
//	testsummary -report FILE                         # print the summary
//
// The filter exits 1 if any test or package failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type skip struct {
	Package, Test, Reason string
}

func main() {
	skips := flag.String("skips", "", "file to append skipped tests to (filter mode)")
	report := flag.String("report", "", "file of skipped tests to summarize (report mode)")
	flag.Parse()
	switch {
	case *report != "":
		if err := printReport(os.Stdout, *report); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
	default:
		ok, err := filter(os.Stdin, os.Stdout, *skips)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		if !ok {
			os.Exit(1)
		}
	}
}

// filter prints what go test would without -v: the output of failed tests
// and each package's result line.
func filter(in io.Reader, out io.Writer, skipFile string) (ok bool, err error) {
	var skipped []skip
	outputs := map[string][]string{} // package + "\x00" + test → output lines
	ok = true
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(out, "%s\n", line) // not an event: pass it on
			continue
		}
		id := e.Package + "\x00" + e.Test
		switch e.Action {
		case "output", "build-output":
			if e.Action == "build-output" {
				fmt.Fprint(out, e.Output)
				continue
			}
			outputs[id] = append(outputs[id], e.Output)
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, skip{e.Package, e.Test, reason(outputs[id])})
			}
			delete(outputs, id)
		case "pass":
			if e.Test == "" {
				fmt.Fprintf(out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
			delete(outputs, id)
		case "fail", "build-fail":
			ok = false
			printed := false
			for _, l := range outputs[id] {
				if !strings.HasPrefix(l, "=== ") {
					fmt.Fprint(out, l)
					printed = printed || strings.HasPrefix(l, "FAIL\t"+e.Package)
				}
			}
			delete(outputs, id)
			if e.Test == "" && e.Action == "fail" && !printed {
				fmt.Fprintf(out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	if skipFile != "" && len(skipped) > 0 {
		f, err := os.OpenFile(skipFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return false, err
		}
		defer f.Close()
		enc := json.NewEncoder(f)
		for _, s := range skipped {
			if err := enc.Encode(s); err != nil {
				return false, err
			}
		}
	}
	return ok, nil
}

// reason is the message a test gave when it skipped: its output without
// the RUN/SKIP lines.
func reason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		// "file_test.go:12: message": drop the position.
		if i := strings.Index(t, ": "); i > 0 && strings.Contains(t[:i], ".go:") {
			t = t[i+2:]
		}
		msg = append(msg, t)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " ")
}

// printReport groups the skipped tests by package and reason.
func printReport(out io.Writer, file string) error {
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) || len(data) == 0 {
		fmt.Fprintln(out, "\nSkipped: nothing. Every test ran.")
		return nil
	}
	if err != nil {
		return err
	}
	type group struct {
		pkg, reason string
		tests       []string
	}
	groups := map[string]*group{}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	for dec.More() {
		var s skip
		if err := dec.Decode(&s); err != nil {
			return err
		}
		k := s.Package + "\x00" + s.Reason
		if groups[k] == nil {
			groups[k] = &group{pkg: s.Package, reason: s.Reason}
		}
		groups[k].tests = append(groups[k].tests, s.Test)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(out, "\nSkipped tests, and why (CI=true turns a missing database into a failure):")
	for _, k := range keys {
		g := groups[k]
		what := g.tests[0]
		if len(g.tests) > 1 {
			what = fmt.Sprintf("%s and %d more", g.tests[0], len(g.tests)-1)
		}
		fmt.Fprintf(out, "  %s: %s\n      %s\n", g.pkg, what, g.reason)
	}
	return nil
}
