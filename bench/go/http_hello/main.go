// http_hello: Go's net/http "hello, world" server, the reference for examples/http_hello.cpp
// in the http_hello benchmark (bench/http_compare.py drives both with wrk).
// Usage: http_hello ADDR [--maxprocs N]
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
)

func main() {
	addr := ""
	for i := 1; i < len(os.Args); i++ {
		switch a := os.Args[i]; {
		case a == "--maxprocs" && i+1 < len(os.Args):
			n, err := strconv.Atoi(os.Args[i+1])
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bad --maxprocs %q\n", os.Args[i+1])
				os.Exit(2)
			}
			runtime.GOMAXPROCS(n)
			i++
		case addr == "":
			addr = a
		default:
			fmt.Fprintf(os.Stderr, "usage: %s ADDR [--maxprocs N]\n", os.Args[0])
			os.Exit(2)
		}
	}
	if addr == "" {
		fmt.Fprintf(os.Stderr, "usage: %s ADDR [--maxprocs N]\n", os.Args[0])
		os.Exit(2)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	})
	fmt.Printf("http_hello (Go): serving http://%s/ on %d processors\n", addr, runtime.GOMAXPROCS(0))
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
