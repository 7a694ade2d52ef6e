// tcp_echo: many TCP connections doing request/response round trips; see bench/gort/tcp_echo.cpp.
// Usage: tcp_echo <maxprocs> [conns=1000] [roundtrips=1000] [size=64]
package main

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"gortbench/internal/bench"
)

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	bench.Procs(1)
	conns := bench.Arg(2, 1000)
	roundtrips := bench.Arg(3, 1000)
	size := bench.Arg(4, 64)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	bench.Check(err == nil, "listen")
	addr := ln.Addr().String()
	var server sync.WaitGroup
	server.Add(1)
	go func() {
		defer server.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener was closed
			}
			server.Add(1)
			go func() { defer server.Done(); echo(c) }()
		}
	}()

	var connected, done sync.WaitGroup
	gate := make(chan struct{})
	var ok atomic.Int64
	connected.Add(int(conns))
	done.Add(int(conns))
	for id := int64(0); id < conns; id++ {
		go func(id int64) {
			c, err := net.Dial("tcp", addr)
			connected.Done()
			bench.Check(err == nil, "dial")
			<-gate // until every client is connected
			out := make([]byte, size)
			in := make([]byte, size)
			var good int64
			for i := int64(0); i < roundtrips; i++ {
				for j := range out {
					out[j] = byte(id + i)
				}
				if _, err := c.Write(out); err != nil {
					break
				}
				if _, err := io.ReadFull(c, in); err != nil {
					break
				}
				if bytes.Equal(in, out) {
					good++
				}
			}
			ok.Add(good)
			c.Close()
			done.Done()
		}(id)
	}
	connected.Wait()
	t0 := time.Now()
	close(gate)
	done.Wait()
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	ln.Close()
	server.Wait()
	bench.Check(ok.Load() == conns*roundtrips, "every round trip echoed the bytes sent")
	bench.Result(float64(conns*roundtrips)/(ms/1000), "rt/s", "roundtrips_per_s")
	bench.Result(ms, "ms", "total_ms")
}
