/*
 * ctlfile: control files, regular files that stand where a Unix socket file
 * is expected and name the real target of a connect() or bind() instead
 * (an AF_VSOCK address, a Firecracker-style vsock multiplexer, TIPC,
 * another Unix path or abstract name, a TCP address), plus up to
 * CTLFILE_MAXOPT socket options to set on the socket made for it.
 *
 * Layout (all integers little-endian; documented in sockgate-mkctl(8)):
 *   0  magic "SGCF"
 *   4  u16 version (1)
 *   6  u16 header size (20)
 *   8  u32 total length of the file
 *   12 u32 CRC32C of every byte after the header
 *   16 u8  target kind (enum ctl_kind)
 *   17 u8  number of socket options
 *   18 u16 length of the target data
 *   20 target data, then the socket options, 16 bytes each:
 *      u32 level, u32 option name, u64 value
 * Target data by kind:
 *   vsock        u32 CID (0xffffffff: any, for bind), u32 port
 *   firecracker  u32 port, then the multiplexer's absolute socket path
 *   tipc         u8 address type, u8 scope, u16 zero, u32 type, lower, upper
 *   unix         an absolute path (no NUL; fits sun_path with its NUL)
 *   abstract     a name (no NUL or control characters; fits sun_path - 1)
 *   tcp          u16 port, 16-byte address (IPv4 as ::ffff:a.b.c.d)
 * ctlfile_decode() checks every field and rejects the whole file when any
 * check fails; ctlfile_encode() of a decoded file gives the same bytes.
 */
#ifndef SOCKGATE_CTLFILE_H
#define SOCKGATE_CTLFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"

#define CTLFILE_MAGIC "SGCF"
#define CTLFILE_VERSION 1
#define CTLFILE_HDR 20
#define CTLFILE_MAXOPT 4
/* The largest valid file: header, the longest target, every option. */
#define CTLFILE_MAXLEN (CTLFILE_HDR + 4 + 108 + CTLFILE_MAXOPT * 16)
#define CTLFILE_CID_ANY 0xffffffffu

enum ctl_kind {
	CTL_VSOCK = 1,
	CTL_FIRECRACKER = 2,
	CTL_TIPC = 3,
	CTL_UNIX = 4,
	CTL_ABSTRACT = 5,
	CTL_TCP = 6,
};

struct ctl_sockopt {
	uint32_t level, name;
	uint64_t value;
};

struct ctlfile {
	enum ctl_kind kind;
	uint32_t cid, port;		/* vsock; firecracker: port; tcp: port */
	char path[108];			/* firecracker, unix, abstract (without the NUL byte) */
	uint8_t addr[16];		/* tcp */
	uint8_t tipc_addrtype, tipc_scope;
	uint32_t tipc_type, tipc_lower, tipc_upper;
	unsigned nopt;
	struct ctl_sockopt opt[CTLFILE_MAXOPT];
};

/* An error for the user: what is wrong, in words. */
struct ctl_error {
	char msg[160];
};

/* Does the buffer start like a control file (the magic only)? */
int ctlfile_is(const void *buf, size_t len);

/*
 * Check and decode. 0, or -1 with errno EINVAL and err->msg saying which
 * check failed (nothing of a rejected file is used).
 */
int ctlfile_decode(const void *buf, size_t len, struct ctlfile *out, struct ctl_error *err);

/*
 * Encode into buf (at least CTLFILE_MAXLEN bytes); returns the length, or
 * -1 with errno EINVAL (err->msg says why) when the struct would not
 * decode again.
 */
ssize_t ctlfile_encode(const struct ctlfile *c, uint8_t *buf, size_t size, struct ctl_error *err);

/*
 * One option as the tools take it: opt is "--vsock", "--firecracker",
 * "--tipc", "--unix", "--abstract", "--tcp" or "--sockopt", val its value
 * ("3:5000", "any:5000", "/run/fc.vsock:52", "2,2,128,99,0" as
 * ADDRTYPE,SCOPE,TYPE,LOWER,UPPER, "/run/x.sock", "name", "127.0.0.1:80",
 * "SO_RCVBUF=65536"). A second target, a fifth option, or a bad value is
 * -1 with EINVAL and a message; an option that is none of these is -1
 * with ENOENT. Numbers are bounded (strtonum).
 */
int ctlfile_option(struct ctlfile *c, const char *opt, const char *val, struct ctl_error *err);

/*
 * The same file as options ctlfile_option() takes again, one line, each
 * value shell-quoted where it needs it: "--vsock any:5000 --sockopt
 * SO_RCVBUF=65536". Returns the length, or -1 with ENOSPC.
 */
int ctlfile_format(const struct ctlfile *c, char *buf, size_t size);

/* The socket option's size for setsockopt() (4 or 8), or 0 if unknown. */
size_t ctlfile_sockopt_size(uint32_t level, uint32_t name);

/*
 * The socket address the target stands for: AF_VSOCK, AF_TIPC, AF_UNIX
 * (a Firecracker target gives its multiplexer's path), AF_INET/AF_INET6.
 * The socket type to make is SOCK_STREAM for all of them.
 */
void ctlfile_sockaddr(const struct ctlfile *c, struct sockaddr_storage *ss, socklen_t *len);

/*
 * Create path exclusively (an existing file, even a dangling link, is
 * never overwritten: EEXIST) with exactly mode, and write the file.
 * On a failure after creating it the file is removed. 0 or -1 + errno.
 */
int ctlfile_create(const char *path, const struct ctlfile *c, mode_t mode);

/*
 * Read and decode the control file at path: a regular file of at most
 * CTLFILE_MAXLEN bytes, read without blocking. -1 with errno: what open
 * or read gave, ENOTSOCK when path is a regular file that is not a control
 * file, EINVAL when it is one that fails a check (err says which).
 */
int ctlfile_read(const char *path, struct ctlfile *out, struct ctl_error *err);

#endif
