// select4: a blocking select over four receive cases; see bench/gort/select4.cpp.
// Usage: select4 <maxprocs> [N=1000000]
package main

import (
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(1)
	n := bench.Arg(2, 1000000)
	per := n / 4
	total := per * 4
	c := [4]chan int64{make(chan int64), make(chan int64), make(chan int64), make(chan int64)}
	t0 := time.Now()
	for _, ch := range c {
		go func(ch chan int64) {
			for i := int64(0); i < per; i++ {
				ch <- i
			}
		}(ch)
	}
	var sum int64
	for i := int64(0); i < total; i++ {
		select {
		case v := <-c[0]:
			sum += v
		case v := <-c[1]:
			sum += v
		case v := <-c[2]:
			sum += v
		case v := <-c[3]:
			sum += v
		}
	}
	ns := float64(time.Since(t0).Nanoseconds())
	bench.Check(sum == 4*(per*(per-1)/2), "received values")
	bench.Result(ns/float64(total), "ns", "ns_per_select")
}
