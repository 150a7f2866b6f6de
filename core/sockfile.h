/*
 * sockfile: the socket files Unix listeners leave behind. A file left by
 * an earlier run (nobody bound to it) may be replaced; a live socket's
 * may not. One probe for the applets and the preload.
 */
#ifndef SOCKGATE_SOCKFILE_H
#define SOCKGATE_SOCKFILE_H

#include <sys/socket.h>
#include <sys/un.h>

/*
 * Is the socket file at un stale? 1 (and it is removed), 0 when there is
 * nothing to remove (no file, not a socket, abstract, or the probe could
 * not tell), -1 with EADDRINUSE when a live socket is bound there.
 */
int sockfile_clear(const struct sockaddr_un *un, socklen_t len);

/*
 * bind(2) fd to a Unix path, replacing a stale socket file there and
 * nothing else: 0, or -1 with errno (EADDRINUSE: a live socket has it).
 */
int bind_unix_path(int fd, const struct sockaddr_un *un, socklen_t len);

/*
 * The same, with the socket file never looser than mode (negative: as created),
 * not even for a moment: Linux creates the file with the mode of the
 * socket's own inode less the umask, so fchmod() before bind() makes it
 * no looser than mode from the start; a chmod() afterwards only brings
 * back bits the umask took. 0 or -1 with errno.
 */
int bind_unix_path_mode(int fd, const struct sockaddr_un *un, socklen_t len, long mode);

/*
 * The numbers of systemd socket activation (sd_listen_fds(3)), parsed one
 * way for all: pid (LISTEN_PID) must be self, fds (LISTEN_FDS) a decimal
 * count from 0 to max, sockets from fd 3. Returns the count, or -1 with
 * errno ENOENT (fds NULL: not activated), ESRCH (pid NULL, not a number
 * or another process's: not for us) or ERANGE (fds not a count in range).
 */
int sd_listen_count(const char *pid, const char *fds, long self, int max);

#endif
