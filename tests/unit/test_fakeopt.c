/*
 * Unit tests for core/fakeopt: what a TCP or UDP socket made AF_UNIX
 * answers for its options: the inet socket's SO_DOMAIN, SO_TYPE and
 * SO_PROTOCOL, other SOL_SOCKET options left to the Unix socket, TCP/IP
 * options read back as set (booleans as 0/1), Linux's defaults where unset
 * is not zero, zeros for the rest, and a full memory still accepting.
 */
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "fakeopt.h"
#include "unit.h"

int main(void)
{
	struct fakeopt m;
	int v = -1, one = 1, five = 5, idle = 30;
	unsigned char tos = 0x10;

	memset(&m, 0, sizeof m);
	CHECK(fakeopt_get(&m, SOL_SOCKET, SO_DOMAIN, AF_INET6, SOCK_STREAM, &v) == FAKEOPT_INT && v == AF_INET6,
	      "SO_DOMAIN is the program's family");
	CHECK(fakeopt_get(&m, SOL_SOCKET, SO_PROTOCOL, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == IPPROTO_TCP,
	      "SO_PROTOCOL of a stream: TCP");
	CHECK(fakeopt_get(NULL, SOL_SOCKET, SO_PROTOCOL, AF_INET, SOCK_DGRAM, &v) == FAKEOPT_INT && v == IPPROTO_UDP,
	      "SO_PROTOCOL of a datagram socket: UDP");
	CHECK(fakeopt_get(&m, SOL_SOCKET, SO_TYPE, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == SOCK_STREAM,
	      "SO_TYPE is the program's type");
	CHECK(fakeopt_get(&m, SOL_SOCKET, SO_KEEPALIVE, AF_INET, SOCK_STREAM, &v) == FAKEOPT_KERNEL,
	      "SO_KEEPALIVE: the Unix socket's");
	CHECK(fakeopt_set(&m, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0 && m.n == 0,
	      "setting a SOL_SOCKET option: the Unix socket's");

	CHECK(fakeopt_get(&m, IPPROTO_TCP, TCP_NODELAY, AF_INET, SOCK_STREAM, &v) == FAKEOPT_ZERO, "unset TCP_NODELAY: zero");
	CHECK(fakeopt_get(&m, IPPROTO_TCP, TCP_MAXSEG, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == 65483,
	      "TCP_MAXSEG: loopback's");
	CHECK(fakeopt_get(&m, IPPROTO_TCP, TCP_MAXSEG, AF_INET, SOCK_DGRAM, &v) == FAKEOPT_ZERO,
	      "TCP_MAXSEG of a datagram socket: zero");
	CHECK(fakeopt_get(&m, IPPROTO_TCP, TCP_KEEPIDLE, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == 7200,
	      "unset TCP_KEEPIDLE: Linux's default");
	CHECK(fakeopt_get(&m, IPPROTO_IP, IP_TTL, AF_INET, SOCK_DGRAM, &v) == FAKEOPT_INT && v == 64, "IP_TTL: 64");

	CHECK(fakeopt_set(&m, IPPROTO_TCP, TCP_NODELAY, &five, sizeof five) == 1, "TCP_NODELAY accepted");
	CHECK(fakeopt_get(&m, IPPROTO_TCP, TCP_NODELAY, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == 1,
	      "TCP_NODELAY reads back as 1");
	CHECK(fakeopt_set(&m, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 1 &&
	      fakeopt_get(&m, IPPROTO_TCP, TCP_KEEPIDLE, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == 30,
	      "TCP_KEEPIDLE reads back as set");
	idle = 45;
	CHECK(fakeopt_set(&m, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 1 && m.n == 2 &&
	      fakeopt_get(&m, IPPROTO_TCP, TCP_KEEPIDLE, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == 45,
	      "set again: replaced in place");
	CHECK(fakeopt_set(&m, IPPROTO_IP, IP_TOS, &tos, 1) == 1 &&
	      fakeopt_get(&m, IPPROTO_IP, IP_TOS, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == 0x10,
	      "IP_TOS as a byte");
	char name[16] = "cubic";
	CHECK(fakeopt_set(&m, IPPROTO_TCP, TCP_CONGESTION, name, sizeof name) == 1 && m.n == 3 &&
	      fakeopt_get(&m, IPPROTO_TCP, TCP_CONGESTION, AF_INET, SOCK_STREAM, &v) == FAKEOPT_ZERO,
	      "a string option: accepted, not kept");
	CHECK(fakeopt_set(NULL, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 1, "no memory: accepted");

	for (int i = 0; i < FAKEOPT_N; i++)
		fakeopt_set(&m, 6000, i, &i, sizeof i);
	CHECK(m.n == FAKEOPT_N, "the memory fills up");
	CHECK(fakeopt_set(&m, 6000, 99, &one, sizeof one) == 1 &&
	      fakeopt_get(&m, 6000, 99, AF_INET, SOCK_STREAM, &v) == FAKEOPT_ZERO, "full: accepted, reads as unset");
	CHECK(fakeopt_get(&m, IPPROTO_TCP, TCP_NODELAY, AF_INET, SOCK_STREAM, &v) == FAKEOPT_INT && v == 1,
	      "the earlier ones stay");
	return unit_done();
}
