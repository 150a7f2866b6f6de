/*
 * u-relay-tproxy's gai-hack inside getaddrinfo(), on when
 * URELAY_TPROXY_LOCAL_FLAGS has 0x80000: PJTL_GAIHACK_STATICDIR entries
 * before the real resolver (h, H, H,R) and after it failed (l, L, L,R),
 * then PJTL_GAIHACK_SNI_PROXY, then no data; a name nothing answered is
 * logged to PJTL_GAIHACK_LOGFILE. AI_ADDRCONFIG is cleared from the hints
 * (a program with no network would otherwise be told no address can do).
 * Names and entries are read by core/gaihack.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gaihack.h"
#include "real.h"
#include "sg.h"

enum { FOUND, NOTFOUND, FAILED };

/* One entry file: FOUND (value in out), NOTFOUND, or FAILED (unreadable, malformed). */
static int entry(int dir, const char *file, char *out, size_t size)
{
	char buf[GAIHACK_FILEMAX + 2];
	int fd = openat(dir, file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		ssize_t n;
		do
			n = read(fd, buf, sizeof buf);
		while (n < 0 && errno == EINTR);
		REAL(close)(fd);
		if (n <= 0)
			return FAILED;
		return gaihack_entry(buf, (size_t)n, 0, out, size) == 0 ? FOUND : FAILED;
	}
	if (errno != ENOENT)
		return FAILED;
	/* a link to "X,VALUE" names no file: it is read, not followed */
	ssize_t n = readlinkat(dir, file, buf, sizeof buf);
	if (n < 0)
		return errno == ENOENT || errno == EINVAL ? NOTFOUND : FAILED;
	return gaihack_entry(buf, (size_t)n, 1, out, size) == 0 ? FOUND : NOTFOUND;
}

static int search(const char *dirname, const char *name, const char ident[2], int *localhost, char *out,
		  size_t size)
{
	char cand[GAIHACK_MAXCAND][GAIHACK_FILEMAX + 1];
	int n = gaihack_candidates(name, ident, cand, localhost);
	int dir = open(dirname, O_RDONLY | O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r = NOTFOUND;

	if (dir < 0)
		return FAILED;
	for (int i = 0; i < n && r == NOTFOUND; i++)
		r = entry(dir, cand[i], out, size);
	REAL(close)(dir);
	return r;
}

static void log_name(const char *file, const char *name)
{
	char line[GAIHACK_NAMEMAX + 40];
	int n = snprintf(line, sizeof line, "sni_proxy_needed_for \"%s\"\n", name);
	int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
	REAL(close)(fd);
}

int gaihack_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo h = { .ai_flags = AI_V4MAPPED };
	char name[GAIHACK_NAMEMAX + 1], value[GAIHACK_FILEMAX];
	struct in_addr v4;
	int localhost = 0;

	if (hints)
		h = *hints;
	h.ai_flags &= ~AI_ADDRCONFIG;
	/* no name, an IPv4 literal, or no name it handles (IPv6 literals among them) */
	if (!node || inet_aton(node, &v4) || gaihack_name(node, name) < 0)
		return REAL(getaddrinfo)(node, service, &h, res);
	const char *dir = getenv("PJTL_GAIHACK_STATICDIR");
	int r = dir && *dir ? search(dir, name, "hH", &localhost, value, sizeof value) : NOTFOUND;
	if (r == FOUND)
		return REAL(getaddrinfo)(value, service, &h, res);
	if (r == FAILED)
		return EAI_AGAIN;
	int e = REAL(getaddrinfo)(node, service, &h, res);
	if (e != EAI_ADDRFAMILY && e != EAI_FAIL && e != EAI_AGAIN && e != EAI_NODATA && e != EAI_NONAME)
		return e;
	r = dir && *dir ? search(dir, name, "lL", &localhost, value, sizeof value) : NOTFOUND;
	if (r == FOUND)
		return REAL(getaddrinfo)(value, service, &h, res);
	if (r == FAILED || localhost)
		return EAI_AGAIN;
	const char *log = getenv("PJTL_GAIHACK_LOGFILE");
	if (log && *log)
		log_name(log, name);
	const char *sni = getenv("PJTL_GAIHACK_SNI_PROXY");
	if (sni && *sni)
		return REAL(getaddrinfo)(sni, service, &h, res);
	return EAI_NODATA;
}
