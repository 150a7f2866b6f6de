// httpserve ADDR: an HTTP server on TCP ADDR with Go's own network code.
// Prints "ready ADDR" (the listener's address as Go sees it) once listening;
// answers every request with "hello from go, you are REMOTEADDR\n" and logs
// "request from REMOTEADDR" on stderr.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %v\n", ln.Addr())
	os.Stdout.Sync()
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(os.Stderr, "request from %s\n", r.RemoteAddr)
		fmt.Fprintf(w, "hello from go, you are %s\n", r.RemoteAddr)
	}))
}
