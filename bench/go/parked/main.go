// parked: memory per parked goroutine and the time to park N of them; see bench/gort/parked.cpp.
// Usage: parked <maxprocs> [N=1000000]
package main

import (
	"sync"
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(2)
	n := bench.Arg(2, 1000000)
	var parked, gate, finished sync.WaitGroup
	gate.Add(1)
	base := bench.RSSBytes()
	t0 := time.Now()
	parked.Add(int(n))
	finished.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func() {
			parked.Done()
			gate.Wait() // blocks until main opens the gate
			finished.Done()
		}()
	}
	parked.Wait()
	createMs := float64(time.Since(t0).Nanoseconds()) / 1e6
	rss := bench.RSSBytes()
	gate.Done()
	finished.Wait()
	totalMs := float64(time.Since(t0).Nanoseconds()) / 1e6
	bench.Result(float64(rss-base)/1024/float64(n), "KiB", "rss_per_g")
	bench.Result(createMs, "ms", "create_ms")
	bench.Result(totalMs, "ms", "total_ms")
}
