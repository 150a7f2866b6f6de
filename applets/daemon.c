/*
 * Daemon plumbing the long-running applets share, one copy each: user and
 * group look-ups, the privilege drop (-u, -g, -G, -k, --chroot), rules
 * loading from a text or compiled file, and the Unix receiver socket.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>

#include "addr.h"
#include "fdpass.h"
#include "rulebin.h"
#include "urtfile.h"
#include "sockfile.h"
#include "util.h"

/* A number where a name was expected: the whole string, uid_t/gid_t -1 excluded. */
static int id_number(const char *s, unsigned *out)
{
	const char *err = NULL;
	long long v;

	if (!*s || s[strspn(s, "0123456789")])
		return -1;
	v = strtonum(s, 0, (long long)UINT_MAX - 1, &err);
	if (err)
		return -1;
	*out = (unsigned)v;
	return 0;
}

uid_t user_lookup(const char *s, gid_t *primary, int *has_entry)
{
	struct passwd *pw = getpwnam(s);
	unsigned n;

	if (!pw && id_number(s, &n) == 0) {
		pw = getpwuid((uid_t)n);
		if (!pw) {
			/* no passwd entry: the number is its own group too */
			if (primary)
				*primary = (gid_t)n;
			if (has_entry)
				*has_entry = 0;
			return (uid_t)n;
		}
	}
	if (!pw)
		die(EX_BADINPUT, "unknown user %s", s);
	if (primary)
		*primary = pw->pw_gid;
	if (has_entry)
		*has_entry = 1;
	return pw->pw_uid;
}

gid_t group_lookup(const char *s)
{
	struct group *gr = getgrnam(s);
	unsigned n;

	if (gr)
		return gr->gr_gid;
	if (id_number(s, &n) < 0)
		die(EX_BADINPUT, "unknown group %s", s);
	return (gid_t)n;
}

int privs_drop(const struct privs *p)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1, groups[NGROUPS_MAX];
	int ngroups = -1, entry = 0, chrooted = 0;
	char name[256] = "";

	if (p->user) {
		uid = user_lookup(p->user, &gid, &entry);
		if (entry) {
			struct passwd *pw = getpwuid(uid);
			if (pw)
				snprintf(name, sizeof name, "%s", pw->pw_name);
		}
	}
	if (p->group)
		gid = group_lookup(p->group);
	if (p->groups) {
		char buf[4096], *save = NULL;
		snprintf(buf, sizeof buf, "%s", p->groups);
		ngroups = 0;
		for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (ngroups == NGROUPS_MAX)
				die(EX_BADINPUT, "-G: too many groups");
			groups[ngroups++] = group_lookup(t);
		}
	} else if (p->keepgroups && name[0] && gid != (gid_t)-1) {
		ngroups = NGROUPS_MAX;
		if (getgrouplist(name, gid, groups, &ngroups) < 0)
			die(EX_BADINPUT, "-k: user %s is in too many groups", name);
	} else if (gid != (gid_t)-1) {
		/* every supplementary group the launcher had goes */
		groups[0] = gid;
		ngroups = 1;
	}
	if (p->chroot) {
		if (!p->user)
			warn("--chroot without -u: still root, with every capability");
		if (chroot(p->chroot) < 0 || chdir("/") < 0)
			die_sys("unable to chroot to %s", p->chroot);
		chrooted = 1;
	}
	if (ngroups >= 0 && setgroups((size_t)ngroups, groups) < 0)
		die_sys("unable to set supplementary groups");
	if (gid != (gid_t)-1 && setgid(gid) < 0)
		die_sys("unable to change to group %ld", (long)gid);
	if (uid != (uid_t)-1 && setuid(uid) < 0)
		die_sys("unable to change to user %ld", (long)uid);
	if ((p->user || p->group || p->groups || p->chroot) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die_sys("unable to set no_new_privs");
	return chrooted;
}

struct ruleset *rules_from_file(const char *path, const char *extra, int fatal)
{
	struct rules_error e = { 0 };
	size_t len = 0;
	char *buf = NULL;
	struct ruleset *rs;

	if (path && !(buf = read_file(path, &len))) {
		if (fatal)
			die_sys("unable to read %s", path);
		warn_sys("unable to read %s (keeping the old rules)", path);
		return NULL;
	}
	if (buf && !rulebin_is(buf, len) && (urt_is(buf, len) || urt_text_is(buf, len))) {
		/* u-relay-tproxy's compiled file or gen-config.py text: the rules they mean */
		char *text;
		int bin = urt_is(buf, len);
		int r = bin ? urt_to_rules(buf, len, &text, &e) : urt_text_to_rules(buf, len, &text, &e);
		free(buf);
		if (r < 0) {
			if (errno != EINVAL) {
				if (fatal)
					die_sys("unable to load %s", path);
				warn_sys("unable to load %s (keeping the old rules)", path);
			} else if (fatal) {
				if (e.line && !bin)
					die(EX_BADINPUT, "%s:%u: %s", path, e.line, e.msg);
				die(EX_BADINPUT, "%s: %s", path, e.msg);
			} else {
				warn("%s: %s (keeping the old rules)", path, e.msg);
			}
			return NULL;
		}
		buf = text;
		len = strlen(text);
	}
	if (buf && extra && *extra && rulebin_is(buf, len)) {
		free(buf);
		die(EX_USAGE, "-r cannot be used with a compiled rules file");
	}
	rs = rules_load_any(buf ? buf : "", len, extra, &e);
	int en = errno;
	free(buf);
	if (rs)
		return rs;
	const char *src = path ? path : "rules";
	errno = en;
	if (en != EINVAL) {
		if (fatal)
			die_sys("unable to load %s", src);
		warn_sys("unable to load %s (keeping the old rules)", src);
	} else if (fatal) {
		if (e.line)
			die(EX_BADINPUT, "%s:%u:%u: %s", src, e.line, e.col, e.msg);
		die(EX_BADINPUT, "%s: %s", src, e.msg);
	} else if (e.line) {
		warn("%s:%u:%u: %s (keeping the old rules)", src, e.line, e.col, e.msg);
	} else {
		warn("%s: %s (keeping the old rules)", src, e.msg);
	}
	return NULL;
}

int unix_receiver(const char *path, long mode, int flags)
{
	struct sg_addr a;

	if (addr_unix(&a, path, 0) < 0)
		die_sys("unable to use %s", path);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | flags, 0);
	if (s < 0)
		die_sys("unable to create a unix socket");
	if (fdpass_receiver_setup(s) < 0)
		die_sys("unable to set SO_PASSCRED");
	if (bind_unix_path_mode(s, &a.u.un, a.len, mode) < 0)
		die_sys("unable to bind unix:%s", path);
	return s;
}

void sender_arg(const char *s, struct recv_policy *p)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", s);
	char *g = strchr(buf, ':');
	if (g)
		*g++ = 0;
	if (buf[0])
		p->uid = user_lookup(buf, NULL, NULL);
	if (g && *g)
		p->gid = group_lookup(g);
}

ssize_t recv_passed(int s, int *fd, void *buf, size_t size, int flags, const struct recv_policy *p,
		    const char *where)
{
	for (;;) {
		struct ucred cr;
		size_t nfds = 1;
		ssize_t n = fdpass_recv_from(s, fd, &nfds, buf, size, flags | MSG_CMSG_CLOEXEC, &cr);
		if (n < 0 && errno != EMSGSIZE)
			return -1;
		if (n < 0)
			warn("%s: a message too long for a metadata record (record ignored)", where);
		if (!nfds) {
			warn("%s: a message without an fd (ignored)", where);
			continue;
		}
		const char *why = NULL;
		if (!fdpass_sender_ok(&cr, p->uid, p->gid))
			why = "a sender not allowed (--sender allows more)";
		else if (p->sockets_only && fdpass_fd_check(*fd, p->type, p->families) < 0)
			why = errno == ENOTSOCK ? "not a socket" : errno == EPROTOTYPE ? "not a socket of the type expected"
			      : "not a socket of the family expected";
		if (why) {
			warn("%s: refused an fd from pid %ld uid %ld gid %ld: %s", where, (long)cr.pid,
			     cr.uid == (uid_t)-1 ? -1L : (long)cr.uid, cr.gid == (gid_t)-1 ? -1L : (long)cr.gid, why);
			close(*fd);
			continue;
		}
		return n < 0 ? 0 : n;
	}
}
