// dump_parked: how long a goroutine dump takes with many goroutines parked; see
// bench/gort/dump_parked.cpp. Usage: dump_parked <maxprocs=2> [N=100000]
package main

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"sync"
	"time"

	"gortbench/internal/bench"
)

//go:noinline
func parkA(gate chan int) { <-gate }

//go:noinline
func parkB(gate chan int) { <-gate }

//go:noinline
func parkC(gate chan int) { <-gate }

func main() {
	bench.Procs(2)
	n := bench.Arg(2, 100000)
	gate := make(chan int)
	var started, finished sync.WaitGroup
	started.Add(int(n))
	finished.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			started.Done()
			switch i % 3 {
			case 0:
				parkA(gate)
			case 1:
				parkB(gate)
			default:
				parkC(gate)
			}
			finished.Done()
		}(i)
	}
	started.Wait()

	var level1 bytes.Buffer
	t0 := time.Now()
	pprof.Lookup("goroutine").WriteTo(&level1, 1)
	dump1Ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	header := fmt.Sprintf("goroutine profile: total %d\n", n+1)
	bench.Check(bytes.HasPrefix(level1.Bytes(), []byte(header)), "the level-1 dump counts every goroutine")

	var level2 bytes.Buffer
	t0 = time.Now()
	pprof.Lookup("goroutine").WriteTo(&level2, 2)
	dump2Ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	bench.Check(level2.Len() > int(n)*40, "the level-2 dump lists every goroutine")

	close(gate)
	finished.Wait()
	bench.Result(dump1Ms, "ms", "dump1_ms")
	bench.Result(dump2Ms, "ms", "dump2_ms")
}
