// sleep_many: many goroutines sleeping at once, total time and median overshoot; see
// bench/gort/sleep_many.cpp. Usage: sleep_many <maxprocs=2> [goroutines=100000] [rounds=10] [sleep_ms=10] [listen=0]
package main

import (
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"gortbench/internal/bench"
)

func main() {
	bench.Procs(2)
	gs := bench.Arg(2, 100000)
	rounds := bench.Arg(3, 10)
	sleepMs := bench.Arg(4, 10)
	var ln net.Listener
	if bench.Arg(5, 0) != 0 {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		bench.Check(err == nil, "listen")
		go func() { ln.Accept() }() // until closed below
	}
	overUs := make([]float64, gs*rounds)
	d := time.Duration(sleepMs) * time.Millisecond
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(int(gs))
	for g := int64(0); g < gs; g++ {
		go func(g int64) {
			for r := int64(0); r < rounds; r++ {
				s := time.Now()
				time.Sleep(d)
				overUs[g*rounds+r] = float64((time.Since(s) - d).Nanoseconds()) / 1e3
			}
			wg.Done()
		}(g)
	}
	wg.Wait()
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	if ln != nil {
		ln.Close()
	}
	sort.Float64s(overUs) // Go has no nth_element; the sort is outside the timed part
	bench.Result(ms, "ms", "total_ms")
	bench.Result(overUs[len(overUs)/2], "us", "overshoot_us")
	// Not compared: see bench/gort/sleep_many.cpp.
	n := len(overUs)
	under3us := sort.SearchFloat64s(overUs, 3.0)
	fmt.Printf("overshoot us: p05 %.2f p25 %.2f p50 %.2f p75 %.2f p90 %.1f; under 3 us: %.1f%%\n",
		overUs[n/20], overUs[n/4], overUs[n/2], overUs[n*3/4], overUs[n*9/10], 100*float64(under3us)/float64(n))
}
