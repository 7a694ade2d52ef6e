// mutex_contention: sync.Mutex under contention; see bench/gort/mutex_contention.cpp.
// Usage: mutex_contention <maxprocs=2> [ops=1000000] [goroutines=8]
package main

import (
	"sync"
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(2)
	ops := bench.Arg(2, 1000000)
	gs := bench.Arg(3, 8)
	per := ops / gs
	var mu sync.Mutex
	var counter int64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(int(gs))
	for g := int64(0); g < gs; g++ {
		go func() {
			for i := int64(0); i < per; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	ns := float64(time.Since(t0).Nanoseconds())
	bench.Check(counter == per*gs, "counter")
	bench.Result(ns/float64(per*gs), "ns", "ns_per_op")
}
