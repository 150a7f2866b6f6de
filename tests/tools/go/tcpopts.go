// tcpopts ADDR: a TCP connection with Go's own network code (CGO_ENABLED=0:
// no libc) on which SetNoDelay(true), SetKeepAlive(true) and
// SetKeepAlivePeriod(30s) are called; prints "nodelay ERR keepalive ERR
// period ERR" (<nil> when they succeed). Exit 1 when it cannot connect.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	c, err := net.DialTimeout("tcp", os.Args[1], 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t := c.(*net.TCPConn)
	fmt.Printf("nodelay %v keepalive %v period %v\n", t.SetNoDelay(true), t.SetKeepAlive(true),
		t.SetKeepAlivePeriod(30*time.Second))
	c.Close()
}
