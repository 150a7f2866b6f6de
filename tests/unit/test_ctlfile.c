/*
 * Unit tests for core/ctlfile: every target kind goes options -> bytes ->
 * struct -> options -> the same bytes; any damage (a flipped byte, any
 * truncation, a field out of range behind a valid checksum) rejects the
 * whole file; the writer never overwrites and sets the mode asked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <wordexp.h>

#include "ctlfile.h"
#include "damage.h"

static const char *const samples[][3] = {
	{ "--vsock", "any:5678", NULL },
	{ "--vsock", "3:1024", "SO_VM_SOCKETS_BUFFER_SIZE=262144" },
	{ "--firecracker", "/run/fc/v.sock:52", "SO_SNDBUF=65536" },
	{ "--tipc", "2,2,128,99,0", "TIPC_IMPORTANCE=1" },
	{ "--unix", "/run/app/real.sock", NULL },
	{ "--abstract", "it's a name", "SO_KEEPALIVE=1" },
	{ "--tcp", "127.0.0.1:8080", "TCP_NODELAY=1" },
	{ "--tcp", "[2001:db8::1]:443", NULL },
};
#define NSAMPLES (sizeof samples / sizeof samples[0])

static const struct unit_seal seal = { 12, CTLFILE_HDR };

static int rejected(const void *b, size_t len, const char *want)
{
	struct ctlfile c;
	struct ctl_error e = { "" };
	errno = 0;
	return unit_refused(ctlfile_decode(b, len, &c, &e) != 0, e.msg, want);
}

/* Parse a --show line back (through the shell's word rules) into a struct. */
static int reparse(const char *line, struct ctlfile *c)
{
	wordexp_t w;
	int r = -1;
	if (wordexp(line, &w, WRDE_NOCMD | WRDE_UNDEF))
		return -1;
	memset(c, 0, sizeof *c);
	if (w.we_wordc % 2 == 0) {
		r = 0;
		for (size_t i = 0; !r && i < w.we_wordc; i += 2)
			r = ctlfile_option(c, w.we_wordv[i], w.we_wordv[i + 1], NULL);
	}
	wordfree(&w);
	return r;
}

int main(void)
{
	struct ctl_error e;
	uint8_t first[CTLFILE_MAXLEN];
	size_t firstlen = 0;

	for (size_t i = 0; i < NSAMPLES; i++) {
		struct ctlfile c, d, r;
		uint8_t b[CTLFILE_MAXLEN], b2[CTLFILE_MAXLEN];
		char line[512];
		memset(&c, 0, sizeof c);
		int ok = ctlfile_option(&c, samples[i][0], samples[i][1], &e) == 0 &&
			 (!samples[i][2] || ctlfile_option(&c, "--sockopt", samples[i][2], &e) == 0);
		CHECK(ok, "%s %s parses", samples[i][0], samples[i][1]);
		ssize_t n = ctlfile_encode(&c, b, sizeof b, &e);
		CHECK(n > CTLFILE_HDR && ctlfile_is(b, (size_t)n), "%s encodes", samples[i][0]);
		CHECK(n > 0 && ctlfile_decode(b, (size_t)n, &d, &e) == 0 && !memcmp(&c, &d, sizeof c),
		      "%s decodes to the same struct", samples[i][0]);
		CHECK(ctlfile_format(&d, line, sizeof line) > 0 && reparse(line, &r) == 0 &&
			      ctlfile_encode(&r, b2, sizeof b2, &e) == n && !memcmp(b, b2, (size_t)n),
		      "%s: the printed form (%s) writes the same bytes", samples[i][0], line);
		if (i == 2) {
			memcpy(first, b, (size_t)n);
			firstlen = (size_t)n;
		}
	}

	/* damage of every kind, on the Firecracker sample (path and option) */
	uint8_t b[CTLFILE_MAXLEN];
	size_t len = firstlen;
	unit_damage(first, len, rejected);
	CHECK(rejected("SGRB\1\0", 6, "bad magic"), "another magic");
	memcpy(b, first, len);
	b[4] = 7;
	CHECK(rejected(b, len, "version 7"), "an unknown version is named");
	static const struct unit_field count[] = {
		{ 18, 200, "do not add up" },	/* a target length past the end */
		{ 17, 2, "do not add up" },	/* an option count past the end */
		{ 17, 9, "at most 4" },		/* more than four options */
	};
	unit_damage_fields(first, len, seal, count, sizeof count / sizeof count[0], rejected);
	memcpy(b, first, len);
	unit_put32le(b + 8, 0xffffffffu);
	CHECK(rejected(b, len, "length"), "a total length that is not the file's");
	uint8_t big[CTLFILE_MAXLEN + 40];
	memset(big, 0, sizeof big);
	memcpy(big, first, len);
	CHECK(rejected(big, sizeof big, "length"), "a file longer than any control file");

	static const struct unit_field field[] = {
		{ 16, 0, "unknown target kind" },
		{ 16, 9, "unknown target kind" },
		{ 24, 'x', "not absolute" },		/* first byte of the path */
		{ 26, 0, "NUL or control" },
		{ 26, '\n', "NUL or control" },
		/* the option record follows the 18-byte target (port, 14-byte path) */
		{ CTLFILE_HDR + 18, 0x77, "unknown socket option" },		/* level */
		{ CTLFILE_HDR + 18 + 4, 0x20, "unknown socket option" },	/* name */
		{ CTLFILE_HDR + 18 + 12, 1, "out of range" },			/* value > INT_MAX */
		{ 16, CTL_VSOCK, "length is not 8" },
	};
	unit_damage_fields(first, len, seal, field, sizeof field / sizeof field[0], rejected);

	/* option values */
	static const char *const bad[][2] = {
		{ "--vsock", "5678" }, { "--vsock", "x:1" }, { "--vsock", "1:4294967296" },
		{ "--firecracker", "relative:5" }, { "--firecracker", "/x" },
		{ "--tipc", "4,2,1,1,1" }, { "--tipc", "1,2,3" }, { "--tipc", "1,0,1,1,1" },
		{ "--tipc", "1,1,5,6,7 junk" }, { "--tipc", "1,1,5,6,7," }, { "--tipc", ",1,1,1,1" },
		{ "--tipc", "1,1,1,1,1234567890123456" }, { "--tipc", "1,1,1,1" },
		{ "--unix", "" }, { "--unix", "rel/path" }, { "--abstract", "a\tb" },
		{ "--tcp", "localhost:80" }, { "--tcp", "127.0.0.1:0" }, { "--tcp", "127.0.0.1:65536" },
		{ "--sockopt", "SO_FOO=1" }, { "--sockopt", "SO_KEEPALIVE=2" }, { "--sockopt", "SO_RCVBUF" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ctlfile c;
		memset(&c, 0, sizeof c);
		e.msg[0] = 0;
		CHECK(ctlfile_option(&c, bad[i][0], bad[i][1], &e) == -1 && errno == EINVAL && e.msg[0],
		      "%s '%s' is refused: %s", bad[i][0], bad[i][1], e.msg);
	}
	char longpath[200];
	memset(longpath, 'a', sizeof longpath);
	longpath[0] = '/';
	longpath[108] = 0;
	struct ctlfile c;
	memset(&c, 0, sizeof c);
	CHECK(ctlfile_option(&c, "--unix", longpath, &e) == -1 && strstr(e.msg, "too long"),
	      "a 108-byte path does not fit sun_path with its NUL");
	longpath[107] = 0;
	CHECK(ctlfile_option(&c, "--unix", longpath, &e) == 0, "a 107-byte path does");
	CHECK(ctlfile_option(&c, "--tcp", "127.0.0.1:1", &e) == -1 && strstr(e.msg, "only one target"),
	      "a second target is refused");
	CHECK(ctlfile_option(&c, "--nope", "x", &e) == -1 && errno == ENOENT, "an unknown option is ENOENT");
	memset(&c, 0, sizeof c);
	ctlfile_option(&c, "--unix", "/x", &e);
	CHECK(ctlfile_option(&c, "--sockopt", "TCP_NODELAY=1", &e) == 0 &&
		      ctlfile_encode(&c, b, sizeof b, &e) == -1 && strstr(e.msg, "does not apply"),
	      "an option for another family is refused when written");
	memset(&c, 0, sizeof c);
	ctlfile_option(&c, "--unix", "/x", &e);
	int four = 1;
	const char *opts[] = { "SO_SNDBUF=1", "SO_RCVBUF=2", "SO_KEEPALIVE=0", "SO_PRIORITY=3", "SO_PRIORITY=4" };
	for (int i = 0; i < 4; i++)
		four &= ctlfile_option(&c, "--sockopt", opts[i], &e) == 0;
	CHECK(four && ctlfile_option(&c, "--sockopt", opts[4], &e) == -1, "four options, not five");

	/* files */
	char dir[] = "/tmp/sgctl.XXXXXX", path[64];
	CHECK(mkdtemp(dir) != NULL, "temp dir");
	snprintf(path, sizeof path, "%s/f.sock", dir);
	memset(&c, 0, sizeof c);
	ctlfile_option(&c, "--vsock", "any:5678", &e);
	mode_t old = umask(077);
	CHECK(ctlfile_create(path, &c, 0640) == 0, "create");
	umask(old);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640 && S_ISREG(st.st_mode),
	      "the file has the mode asked whatever the umask (%o)", (unsigned)(st.st_mode & 07777));
	CHECK(ctlfile_create(path, &c, 0640) == -1 && errno == EEXIST, "an existing file is not overwritten");
	struct ctlfile d;
	CHECK(ctlfile_read(path, &d, &e) == 0 && !memcmp(&c, &d, sizeof c), "read it back");
	char link[80];
	snprintf(link, sizeof link, "%s/dangling", dir);
	CHECK(symlink("/nonexistent/sgctl", link) == 0 && ctlfile_create(link, &c, 0644) == -1 &&
		      errno == EEXIST && access("/nonexistent/sgctl", F_OK) == -1,
	      "a dangling link is not followed");
	CHECK(ctlfile_read(dir, &d, &e) == -1 && errno == ENOTSOCK, "a directory is not a control file");
	char plain[80];
	snprintf(plain, sizeof plain, "%s/plain", dir);
	int fd = open(plain, O_WRONLY | O_CREAT, 0644);
	CHECK(fd >= 0 && write(fd, "hello", 5) == 5 && close(fd) == 0 && ctlfile_read(plain, &d, &e) == -1 &&
		      errno == ENOTSOCK,
	      "a plain file is not a control file");
	CHECK(ctlfile_read("/nonexistent/x", &d, &e) == -1 && errno == ENOENT, "a missing file is ENOENT");
	unlink(path);
	unlink(link);
	unlink(plain);
	rmdir(dir);
	return unit_done();
}
