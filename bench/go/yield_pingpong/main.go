// yield_pingpong: cost of one goroutine switch through runtime.Gosched; see
// bench/gort/yield_pingpong.cpp. Usage: yield_pingpong <maxprocs=1> [N=1000000]
package main

import (
	"runtime"
	"sync"
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(1)
	n := bench.Arg(2, 1000000)
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(2)
	for k := 0; k < 2; k++ {
		go func() {
			for i := int64(0); i < n; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	ns := float64(time.Since(t0).Nanoseconds())
	bench.Result(ns/(2*float64(n)), "ns", "ns_per_switch")
}
