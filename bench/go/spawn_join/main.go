// spawn_join: create, schedule and finish N trivial goroutines; see bench/gort/spawn_join.cpp.
// Usage: spawn_join <maxprocs> [N=1000000]
package main

import (
	"sync"
	"sync/atomic"
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(1)
	n := bench.Arg(2, 1000000)
	var sum int64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			atomic.AddInt64(&sum, i)
			wg.Done()
		}(i)
	}
	wg.Wait()
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	bench.Check(atomic.LoadInt64(&sum) == n*(n-1)/2, "sum of indices")
	bench.Result(ms, "ms", "total_ms")
}
