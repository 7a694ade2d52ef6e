// preempt_latency: how late a sleeper wakes while other goroutines spin without function
// calls; see bench/gort/preempt_latency.cpp. Usage: preempt_latency <maxprocs=1> [samples=200] [sleep_ms=1]
package main

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"gortbench/internal/bench"
)

func main() {
	procs := bench.Procs(1)
	samples := bench.Arg(2, 200)
	sleepMs := bench.Arg(3, 1)
	var stop int32
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ { // one spinner per P: every P is taken
		wg.Add(1)
		go func() {
			for atomic.LoadInt32(&stop) == 0 {
			}
			wg.Done()
		}()
	}
	late := make([]float64, samples)
	d := time.Duration(sleepMs) * time.Millisecond
	for i := range late {
		s := time.Now()
		time.Sleep(d)
		late[i] = float64((time.Since(s) - d).Nanoseconds()) / 1e3
	}
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	sort.Float64s(late)
	p99 := len(late) * 99 / 100
	if p99 >= len(late) {
		p99 = len(late) - 1
	}
	bench.Result(late[len(late)/2], "us", "p50_us")
	bench.Result(late[p99], "us", "p99_us")
}
