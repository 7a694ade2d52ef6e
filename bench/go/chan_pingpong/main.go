// chan_pingpong: round trip through two unbuffered channels; see bench/gort/chan_pingpong.cpp.
// Usage: chan_pingpong <maxprocs> [N=1000000]
package main

import (
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(1)
	n := bench.Arg(2, 1000000)
	ping := make(chan int64)
	pong := make(chan int64)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	var sum int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ping <- i
		sum += <-pong
	}
	ns := float64(time.Since(t0).Nanoseconds())
	close(ping)
	bench.Check(sum == n*(n-1)/2, "echoed values")
	bench.Result(ns/float64(n), "ns", "ns_per_roundtrip")
}
