// udpask dial|to ADDR QUESTION: one DNS-like UDP exchange with Go's own
// network code (CGO_ENABLED=0: no libc). "dial": a connected socket
// (net.Dial: connect, write, read); "to": an unconnected one
// (net.ListenPacket: bind, sendto, recvfrom). Prints "reply TEXT from ADDR"
// with the reply's source as Go sees it, and "local ADDR"; on failure the
// error on stderr, exit 1. Waits at most 5 seconds for the reply.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		os.Exit(100)
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(5 * time.Second)
	switch os.Args[1] {
	case "dial":
		c, err := net.Dial("udp", os.Args[2])
		if err != nil {
			fail(err)
		}
		c.SetDeadline(deadline)
		if _, err := c.Write([]byte(os.Args[3])); err != nil {
			fail(err)
		}
		n, err := c.Read(buf)
		if err != nil {
			fail(err)
		}
		fmt.Printf("reply %s from %v\nlocal %v\n", buf[:n], c.RemoteAddr(), c.LocalAddr())
	case "to":
		to, err := net.ResolveUDPAddr("udp", os.Args[2])
		if err != nil {
			fail(err)
		}
		c, err := net.ListenPacket("udp", ":0")
		if err != nil {
			fail(err)
		}
		c.SetDeadline(deadline)
		if _, err := c.WriteTo([]byte(os.Args[3]), to); err != nil {
			fail(err)
		}
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			fail(err)
		}
		fmt.Printf("reply %s from %v\nlocal %v\n", buf[:n], from, c.LocalAddr())
	default:
		os.Exit(100)
	}
}
