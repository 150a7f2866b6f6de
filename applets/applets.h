/*
 * The applet list: APPLET(name, function, one-line summary). Included once
 * for the prototypes and once for the dispatch table (applets/main.c). An
 * applet is listed here only when it is implemented.
 */
APPLET(asmgen, asmgen_main, "compile, check and dump rules files")
APPLET(mkctl, mkctl_main, "write a control file naming a VSOCK, Firecracker, TIPC, Unix or TCP target")
APPLET(relay, relay_main, "forward connections (Unix, TCP, passed fds) with splice, PROXY headers and allow rules")
APPLET(run, run_main, "check the rules and run a program with libsockgate.so preloaded")
APPLET(server, server_main, "accept TCP and pass each socket to a receiver chosen by rules")
APPLET(inetd, inetd_main, "receive passed sockets and run a program per connection (UCSPI)")
APPLET(send-fd, sendfd_main, "send an fd to a Unix socket, or receive one and run a program with it")
