// fib: fork/join recursion, a goroutine per call above a cutoff; see bench/gort/fib.cpp.
// Usage: fib <maxprocs> [n=32] [cutoff=8]
package main

import (
	"sync"
	"time"

	"gortbench/internal/bench"
)

func fibSerial(n int) int64 {
	if n < 2 {
		return int64(n)
	}
	return fibSerial(n-1) + fibSerial(n-2)
}

func fib(n, cutoff int) int64 {
	if n < cutoff || n < 2 {
		return fibSerial(n)
	}
	var a int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		a = fib(n-1, cutoff)
		wg.Done()
	}()
	b := fib(n-2, cutoff)
	wg.Wait()
	return a + b
}

func main() {
	bench.Procs(1)
	n := int(bench.Arg(2, 32))
	cutoff := int(bench.Arg(3, 8))
	t0 := time.Now()
	r := fib(n, cutoff)
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	bench.Check(r == fibSerial(n), "fib value")
	bench.Result(ms, "ms", "total_ms")
}
