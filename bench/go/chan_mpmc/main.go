// chan_mpmc: many-producer many-consumer throughput of one buffered channel; see
// bench/gort/chan_mpmc.cpp. Usage: chan_mpmc <maxprocs> [N=10000000] [producers=4] [consumers=4] [cap=128]
package main

import (
	"sync"
	"sync/atomic"
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(2)
	n := bench.Arg(2, 10000000)
	producers := bench.Arg(3, 4)
	consumers := bench.Arg(4, 4)
	capacity := bench.Arg(5, 128)
	per := n / producers
	items := per * producers
	ch := make(chan int64, capacity)
	var total int64
	var sent, received sync.WaitGroup
	t0 := time.Now()
	received.Add(int(consumers))
	for c := int64(0); c < consumers; c++ {
		go func() {
			var sum int64
			for v := range ch {
				sum += v
			}
			atomic.AddInt64(&total, sum)
			received.Done()
		}()
	}
	sent.Add(int(producers))
	for p := int64(0); p < producers; p++ {
		go func() {
			for i := int64(0); i < per; i++ {
				ch <- i
			}
			sent.Done()
		}()
	}
	sent.Wait()
	close(ch)
	received.Wait()
	ns := float64(time.Since(t0).Nanoseconds())
	bench.Check(atomic.LoadInt64(&total) == producers*(per*(per-1)/2), "received values")
	bench.Result(ns/float64(items), "ns", "ns_per_item")
}
