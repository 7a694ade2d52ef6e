// Package bench holds the helpers shared by the Go benchmark programs: arguments, timing
// and the `RESULT <value> <unit> <metric>` lines that bench/compare.py parses.
package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Arg returns os.Args[i] as an integer, or def when absent.
func Arg(i int, def int64) int64 {
	if i >= len(os.Args) {
		return def
	}
	v, err := strconv.ParseInt(os.Args[i], 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bad argument %q: %v\n", os.Args[i], err)
		os.Exit(1)
	}
	return v
}

// Procs sets GOMAXPROCS from argument 1 (default def) and returns it.
func Procs(def int64) int {
	p := int(Arg(1, def))
	runtime.GOMAXPROCS(p)
	return p
}

// Result prints one metric line.
func Result(value float64, unit, metric string) {
	fmt.Printf("RESULT %.3f %s %s\n", value, unit, metric)
}

// Check exits with status 1 when a workload computed a wrong answer.
func Check(ok bool, what string) {
	if !ok {
		fmt.Fprintf(os.Stderr, "check failed: %s\n", what)
		os.Exit(1)
	}
}

// RSSBytes is the resident set size: resident pages from /proc/self/statm times the page size.
func RSSBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
