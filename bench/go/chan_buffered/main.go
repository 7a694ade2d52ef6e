// chan_buffered: SPSC throughput of a buffered channel; see bench/gort/chan_buffered.cpp.
// Usage: chan_buffered <maxprocs> [N=10000000] [cap=128]
package main

import (
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(1)
	n := bench.Arg(2, 10000000)
	capacity := bench.Arg(3, 128)
	ch := make(chan int64, capacity)
	t0 := time.Now()
	go func() {
		for i := int64(0); i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	var sum int64
	for v := range ch {
		sum += v
	}
	ns := float64(time.Since(t0).Nanoseconds())
	bench.Check(sum == n*(n-1)/2, "received values")
	bench.Result(ns/float64(n), "ns", "ns_per_item")
}
