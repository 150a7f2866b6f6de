/*
 * sockfile: the socket files Unix listeners leave behind. A file left by
 * an earlier run (nobody bound to it) may be replaced; a live socket's
 * may not. One probe for the applets and the preload.
 */
#ifndef SOCKGATE_SOCKFILE_H
#define SOCKGATE_SOCKFILE_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/*
 * Is the socket file at un stale? 1 (and it is removed), 0 when there is
 * nothing to remove (no file, not a socket, abstract, or the probe could
 * not tell), -1 with EADDRINUSE when a live socket is bound there.
 */
int sockfile_clear(const struct sockaddr_un *un, socklen_t len);

/*
 * The socket file a listener was bound to (dev, ino: the file as it was
 * made), once that listener may have been closed for good: removed when it
 * is still that file and nobody is bound to it any more, that is when no
 * process holds the socket (a forked child's copy, a dup, one passed with
 * SCM_RIGHTS or still in flight keeps it). 1 removed, 0 not; errno kept.
 */
int sockfile_remove(const struct sockaddr_un *un, socklen_t len, dev_t dev, ino_t ino);

/*
 * bind(2) fd to a Unix path, replacing a stale socket file there and
 * nothing else: 0, or -1 with errno (EADDRINUSE: a live socket has it).
 */
int bind_unix_path(int fd, const struct sockaddr_un *un, socklen_t len);

/*
 * The same, the file given mode (negative: as the umask makes it), owner
 * uid and group gid ((uid_t)-1, (gid_t)-1: left alone), never granting
 * more than that, not even for a moment: Linux makes the file with the
 * socket's own mode less the umask, so the mode is set on the socket
 * before bind(2) (with no group bits while the file still has our group),
 * then the owner, then the bits the umask took, both on the file bind()
 * made even when the path was swapped (for a symlink, say) in between:
 * EEXIST when the path holds no socket of ours by then. A chown or chmod
 * that fails removes the file again. 0, or -1 with errno.
 */
int bind_unix_path_owned(int fd, const struct sockaddr_un *un, socklen_t len, long mode, uid_t uid, gid_t gid);

/* The same with no owner or group change. */
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
