//go:build ignore

// testreport reads `go test -json` events on stdin and prints a compact report: one line per package,
// the full output of every failed test and build, every skipped test with its reason, and a summary.
// With -fail-on-skip it exits 1 when any test skipped (CI: nothing it is meant to exercise may skip).
// With -v it prints every test's output as it arrives, like `go test -v`.
//
//	go test -json ./... | tee var/test/go-test.json | go run scripts/testreport.go
//	go run scripts/testreport.go -fail-on-skip -quiet < var/test/go-test.json
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

// event is one line of `go test -json` (cmd/test2json), including the build events of Go 1.24+.
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string // build-output / build-fail
}

type key struct{ pkg, test string }

func main() {
	failOnSkip := flag.Bool("fail-on-skip", false, "exit 1 when any test was skipped")
	verbose := flag.Bool("v", false, "print all test output as it arrives")
	quiet := flag.Bool("quiet", false, "print only skipped tests and the summary (failures are listed, not shown)")
	flag.Parse()
	os.Exit(run(os.Stdin, os.Stdout, *failOnSkip, *verbose, *quiet))
}

func run(in io.Reader, out io.Writer, failOnSkip, verbose, quiet bool) int {
	output := map[key][]string{} // buffered output per test ("" test = package level)
	build := map[string][]string{}
	var passed, failed, skipped int
	var failedTests, skippedTests, failedPkgs, badLines []string

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (e.g. a linker message printed outside JSON): keep it for the report.
			if s := strings.TrimSpace(string(line)); s != "" {
				badLines = append(badLines, s)
				fmt.Fprintln(out, s)
			}
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			build[e.ImportPath] = append(build[e.ImportPath], e.Output)
		case "build-fail":
			if quiet {
				continue
			}
			fmt.Fprintf(out, "BUILD FAIL %s\n%s", e.ImportPath, indent(build[e.ImportPath]))
		case "output":
			if verbose {
				fmt.Fprint(out, e.Output)
			}
			output[k] = append(output[k], e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" { // package result
				switch e.Action {
				case "fail":
					failedPkgs = append(failedPkgs, e.Package)
					// Package-level output (panics, TestMain failures, timeouts) is printed in full.
					if !quiet {
						fmt.Fprintf(out, "FAIL %s (%.1fs)\n%s", e.Package, e.Elapsed, indent(output[k]))
					}
				case "pass":
					if !quiet && !verbose {
						fmt.Fprintf(out, "ok   %s (%.1fs)\n", e.Package, e.Elapsed)
					}
				}
				delete(output, k)
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "fail":
				failed++
				failedTests = append(failedTests, e.Package+" "+e.Test)
				if !verbose && !quiet {
					fmt.Fprintf(out, "--- FAIL %s %s (%.2fs)\n%s", e.Package, e.Test, e.Elapsed, indent(output[k]))
				}
			case "skip":
				skipped++
				reason := skipReason(output[k])
				skippedTests = append(skippedTests, fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason))
				if !verbose {
					fmt.Fprintf(out, "--- SKIP %s %s: %s\n", e.Package, e.Test, reason)
				}
			}
			delete(output, k)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testreport: reading events:", err)
		return 1
	}

	// The summary stands alone on its line ("tests: N passed, N failed, N skipped"), the shape CI's
	// result reader recognises in any language.
	fmt.Fprintf(out, "\npackages failed: %d\ntests: %d passed, %d failed, %d skipped\n",
		len(failedPkgs), passed, failed, skipped)
	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		sort.Strings(items)
		fmt.Fprintf(out, "%s:\n", title)
		for _, s := range items {
			fmt.Fprintf(out, "  %s\n", s)
		}
	}
	list("failed packages", failedPkgs)
	list("failed tests", failedTests)
	list("skipped tests", skippedTests)

	code := 0
	if len(failedPkgs) > 0 || failed > 0 {
		code = 1
	}
	if failOnSkip && skipped > 0 {
		fmt.Fprintf(out, "FAIL: %d test(s) skipped; in CI every test must run (see the skip reasons above)\n", skipped)
		code = 1
	}
	if passed+failed+skipped == 0 && len(failedPkgs) == 0 && len(badLines) == 0 {
		fmt.Fprintln(out, "testreport: no test events read (was `go test -json` run?)")
		code = 1
	}
	return code
}

// skipReason picks the message a test gave to t.Skip: the output lines after the "=== RUN" header and
// before the "--- SKIP" line.
func skipReason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		msg = append(msg, t)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " | ")
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("    ")
		b.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}
