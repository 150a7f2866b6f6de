/*
 * Unit tests for core/dgmap: targets found again by the source a reply
 * comes from (with or without the NUL the kernel may count), the oldest
 * target going when the map is full, and where the client's socket file
 * goes.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

#include "addr.h"
#include "dgmap.h"
#include "unit.h"

static socklen_t un(struct sockaddr_un *u, const char *path)
{
	memset(u, 0, sizeof *u);
	u->sun_family = AF_UNIX;
	strcpy(u->sun_path, path);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
}

int main(void)
{
	struct dgmap m;
	struct sockaddr_un u, v;
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(53) };
	struct sockaddr_storage got;

	memset(&m, 0, sizeof m);
	inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
	socklen_t ul = un(&u, "/run/dns.sock");
	dgmap_add(&m, &u, ul, (struct sockaddr *)&in, sizeof in);
	CHECK(dgmap_find(&m, &u, ul, &got) == sizeof in && !memcmp(&got, &in, sizeof in), "found by the same address");
	CHECK(dgmap_find(&m, &u, ul + 1, &got) == sizeof in, "found with the NUL counted");
	un(&v, "/run/other.sock");
	CHECK(dgmap_find(&m, &v, ul, &got) == 0, "another path: none");
	dgmap_add(&m, &u, ul, (struct sockaddr *)&in, sizeof in);
	CHECK(m.n == 1, "the same target once");
	char p[32];
	for (int i = 0; i < DGMAP_N; i++) {
		snprintf(p, sizeof p, "/run/s%d.sock", i);
		socklen_t l = un(&v, p);
		in.sin_port = htons((uint16_t)(1000 + i));
		dgmap_add(&m, &v, l, (struct sockaddr *)&in, sizeof in);
	}
	CHECK(dgmap_find(&m, &u, ul, &got) == 0, "the oldest target goes when the map is full");
	socklen_t l = un(&v, "/run/s7.sock");
	CHECK(dgmap_find(&m, &v, l, &got) && ((struct sockaddr_in *)&got)->sin_port == htons(1007), "the newest stays");

	struct sockaddr_un out;
	socklen_t ol;
	CHECK(dgmap_path(NULL, &u, 42, 7, &out, &ol) == 0 && !strcmp(out.sun_path, "/run/.sockgate-dgram-42-7") &&
		      ol == offsetof(struct sockaddr_un, sun_path) + strlen(out.sun_path) + 1,
	      "beside the target: %s", out.sun_path);
	CHECK(dgmap_path("/tmp/d", &u, 42, 8, &out, &ol) == 0 && !strcmp(out.sun_path, "/tmp/d/.sockgate-dgram-42-8"),
	      "in the directory given");
	un(&v, "/x.sock");
	CHECK(dgmap_path(NULL, &v, 1, 1, &out, &ol) == 0 && !strcmp(out.sun_path, "//.sockgate-dgram-1-1"),
	      "a target in /: in / (%s)", out.sun_path);
	un(&v, "rel.sock");
	CHECK(dgmap_path(NULL, &v, 1, 1, &out, &ol) == 0 && !strcmp(out.sun_path, "./.sockgate-dgram-1-1"),
	      "a relative target: the current directory");
	memset(&v, 0, sizeof v);
	v.sun_family = AF_UNIX;	/* abstract: sun_path[0] == 0 */
	CHECK(dgmap_path(NULL, &v, 1, 1, &out, &ol) == -1, "an abstract target and no directory: none");
	CHECK(dgmap_path(NULL, NULL, 1, 1, &out, &ol) == -1, "no target and no directory: none");
	char longdir[120];
	memset(longdir, 'd', sizeof longdir - 1);
	longdir[sizeof longdir - 1] = 0;
	CHECK(dgmap_path(longdir, &u, 1, 1, &out, &ol) == -1, "a name too long: none");

	/* the reply file as the server sees it */
	struct sockaddr_un srv, cli;
	socklen_t sl = un(&srv, "/run/sg/dns.sock"), cl = un(&cli, "/sg/.sockgate-dgram-5-1");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, NULL, &out, &ol) == 0 && !strcmp(out.sun_path, "/run/sg/.sockgate-dgram-5-1") &&
		      ol == offsetof(struct sockaddr_un, sun_path) + strlen(out.sun_path) + 1,
	      "a container's view of the directory: beside the server's socket (%s)", out.sun_path);
	CHECK(dgmap_beside(&cli, cl + 1, &srv, sl + 1, NULL, &out, &ol) == 0 && !strcmp(out.sun_path, "/run/sg/.sockgate-dgram-5-1"),
	      "the NUL counted or not");
	cl = un(&cli, "/c/.sockgate-dgram-5-1");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, "/run", &out, &ol) == 0 && !strcmp(out.sun_path, "/sg/.sockgate-dgram-5-1"),
	      "chrooted to /run: the root taken off (%s)", out.sun_path);
	CHECK(dgmap_beside(&cli, cl, &srv, sl, "/run/", &out, &ol) == 0 && !strcmp(out.sun_path, "/sg/.sockgate-dgram-5-1"),
	      "a root with a trailing slash");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, "/run/sg", &out, &ol) == 0 && !strcmp(out.sun_path, "/.sockgate-dgram-5-1"),
	      "chrooted to the socket's own directory: in / (%s)", out.sun_path);
	CHECK(dgmap_beside(&cli, cl, &srv, sl, "/", &out, &ol) == 0 && !strcmp(out.sun_path, "/run/sg/.sockgate-dgram-5-1"),
	      "a root of / changes nothing");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, "/ru", &out, &ol) == -1, "a root that is only a prefix of a name: out of reach");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, "/srv", &out, &ol) == -1, "a socket outside the root: out of reach");
	sl = un(&srv, "/dns.sock");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, NULL, &out, &ol) == 0 && !strcmp(out.sun_path, "/.sockgate-dgram-5-1"),
	      "a socket in /");
	sl = un(&srv, "dns.sock");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, NULL, &out, &ol) == 0 && !strcmp(out.sun_path, ".sockgate-dgram-5-1"),
	      "a relative socket path: the current directory");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, "/run", &out, &ol) == -1, "a relative socket path and a root: out of reach");
	sl = un(&srv, "/sg/dns.sock");
	cl = un(&cli, "/sg/.sockgate-dgram-5-1");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, NULL, &out, &ol) == -1, "the sender's own path: nothing else to try");
	sl = un(&srv, "/run/sg/dns.sock");
	cl = un(&cli, "/sg/my.sock");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, NULL, &out, &ol) == -1, "a file not of ours: left alone");
	cl = un(&cli, "/sg/.sockgate-dgram-");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, NULL, &out, &ol) == -1, "the bare prefix: not one of ours");
	cl = un(&cli, ".sockgate-dgram-1-2");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, NULL, &out, &ol) == 0 && !strcmp(out.sun_path, "/run/sg/.sockgate-dgram-1-2"),
	      "a relative sender path");
	memset(&cli, 0, sizeof cli);
	cli.sun_family = AF_UNIX;
	memcpy(cli.sun_path, "\0.sockgate-dgram-1-1", 20);
	CHECK(dgmap_beside(&cli, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 20), &srv, sl, NULL, &out, &ol) == -1,
	      "an abstract sender: none");
	CHECK(dgmap_beside(&cli, (socklen_t)offsetof(struct sockaddr_un, sun_path), &srv, sl, NULL, &out, &ol) == -1,
	      "an unnamed sender: none");
	memset(longdir, 'd', sizeof longdir - 1);
	longdir[0] = '/';
	memcpy(longdir + 90, "/dns.sock", 10);
	sl = un(&srv, longdir);
	cl = un(&cli, "/s/.sockgate-dgram-123456-123456");
	CHECK(dgmap_beside(&cli, cl, &srv, sl, NULL, &out, &ol) == -1, "a result too long for sun_path: none");
	memset(&cli, 'x', sizeof cli);
	cli.sun_family = AF_UNIX;
	memcpy(cli.sun_path, "/s/.sockgate-dgram-", 19);
	sl = un(&srv, "/r/dns.sock");
	CHECK(dgmap_beside(&cli, sizeof cli, &srv, sl, NULL, &out, &ol) == -1, "a sender path without a NUL, too long once moved");
	return unit_done();
}
