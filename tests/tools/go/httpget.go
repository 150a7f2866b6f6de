// httpget URL: a GET with Go's own network code (CGO_ENABLED=0: no libc).
// Prints "peer ADDR" (the connection's remote address as Go sees it) on
// stderr and the body on stdout; on failure the error on stderr, exit 1.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
)

func main() {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		fmt.Fprintf(os.Stderr, "peer %v local %v\n", i.Conn.RemoteAddr(), i.Conn.LocalAddr())
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", os.Args[1], nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
}
