/*
 * Rules for the preload, loaded once on first use (pthread_once) from the
 * environment: SOCKGATE_RULE (inline, ';'-separated), SOCKGATE_RULES (a text
 * file, or one compiled by sockgate-asmgen, told apart by its magic), and
 * the variables of unsock and u-relay-tproxy (see libsockgate(7)).
 *
 * Rules that do not load leave every socket alone, after one line on stderr
 * naming file:line:col; SOCKGATE_STRICT=1 makes inet connects fail instead.
 *
 * In a setuid or setgid program (AT_SECURE: the kernel's word that the
 * environment belongs to a less privileged caller) nothing is loaded and
 * nothing said: every call goes to libc as if no rule matched. Every
 * variable the library reads is read with secure_getenv() for the same
 * reason, so a path such a caller names is never opened, nor echoed in an
 * error message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real.h"
#include "file.h"
#include "rulebin.h"
#include "urtfile.h"
#include "sg.h"

struct sgconf sg_conf;
pthread_once_t sg_conf_once = PTHREAD_ONCE_INIT;

void sg_msg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof buf, "libsockgate: ");

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t l = strlen(buf);
	buf[l++] = '\n';
	ssize_t r = REAL(write)(2, buf, l);
	(void)r;
}

static int add(struct ruleset *rs)
{
	if (sg_conf.nrs >= (int)(sizeof sg_conf.rs / sizeof sg_conf.rs[0])) {
		rules_free(rs);
		return 0;
	}
	sg_conf.rs[sg_conf.nrs++] = rs;
	for (size_t i = 0; i < rs->n; i++) {
		if (rs->rule[i].dir == RULE_CONNECT)
			sg_conf.have_connect = 1;
		if (rs->rule[i].dir == RULE_CONNECT && (rs->rule[i].proto & RULE_ICMP))
			sg_conf.have_icmp = 1;
		if (rs->rule[i].dir == RULE_BIND)
			sg_conf.have_bind = 1;
		if (rs->rule[i].dir == RULE_RESOLVE)
			sg_conf.have_resolve = 1;
		if (rs->rule[i].flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1))
			sg_conf.have_proxy = 1;
	}
	return 0;
}

static void broken(const char *where, const struct rules_error *e)
{
	if (e->line)
		sg_msg("%s:%u:%u: %s (no socket is redirected%s)", where, e->line, e->col, e->msg,
		       sg_conf.strict ? "; SOCKGATE_STRICT=1: inet connects fail" : "");
	else
		sg_msg("%s: %s (no socket is redirected%s)", where, e->msg,
		       sg_conf.strict ? "; SOCKGATE_STRICT=1: inet connects fail" : "");
	sg_conf.broken = 1;
}

/* A ruleset just loaded (NULL: errno and e say why) is added, or the configuration is broken. */
static int loaded(const char *where, struct ruleset *rs, struct rules_error *e)
{
	if (!rs) {
		if (errno == ENOMEM && !e->msg[0])
			snprintf(e->msg, sizeof e->msg, "out of memory");
		broken(where, e);
		return -1;
	}
	return add(rs);
}

static int load_text(const char *where, const char *text, size_t len)
{
	struct rules_error e;

	memset(&e, 0, sizeof e);
	return loaded(where, rules_parse(text, len, &e), &e);
}

static int load_file(const char *path)
{
	size_t len;
	char *buf = file_read(path, &len);
	struct rules_error e;

	memset(&e, 0, sizeof e);
	if (!buf) {
		snprintf(e.msg, sizeof e.msg, "cannot read rules: %s", strerror(errno));
		broken(path, &e);
		return -1;
	}
	struct ruleset *rs = rules_load_any(buf, len, NULL, &e);
	int en = errno;
	free(buf);
	errno = en;
	return loaded(path, rs, &e);
}

/*
 * unsock: connections to UNSOCK_ADDR (default 127.175.0.0/32), on port
 * UNSOCK_PORT only when it is set, go to UNSOCK_DIR/PORT.sock, and binds
 * there listen on it (mode UNSOCK_MODE). The address itself (127.175.0.3 of
 * 127.175.0.3/0) is what accepted connections report as their peer.
 */
static int load_unsock(const char *dir)
{
	const char *addr = secure_getenv("UNSOCK_ADDR");
	char a[64], flag[40], text[640];

	if (!addr || !*addr)
		addr = "127.175.0.0/32";
	snprintf(a, sizeof a, "%s", addr);
	snprintf(flag, sizeof flag, "%.*s:0", (int)strcspn(a, "/"), a);
	/* unsock: "/0" means every IPv4 address (only IPv4 is intercepted) */
	char *slash = strchr(a, '/');
	if (slash && !strcmp(slash, "/0"))
		snprintf(a, sizeof a, "0.0.0.0/0");
	const char *port = secure_getenv("UNSOCK_PORT");
	if (port && *port && strcmp(port, "-1")) {
		const char *why = NULL;
		long long p = strtonum(port, 0, 65535, &why);
		if (why) {
			struct rules_error e = { 0, 0, "" };
			snprintf(e.msg, sizeof e.msg, "UNSOCK_PORT '%.20s' is %s (expected 0-65535, or -1 for any)", port,
				 why);
			broken("UNSOCK_PORT", &e);
			return -1;
		}
		size_t l = strlen(a);
		snprintf(a + l, sizeof a - l, ":%lld", p);
	}
	const char *sep = dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/";
	if (strpbrk(dir, " \t;#%") || strpbrk(a, " \t;#")) {
		struct rules_error e = { 0, 0, "UNSOCK_DIR or UNSOCK_ADDR has a character rules cannot carry" };
		broken("UNSOCK_DIR", &e);
		return -1;
	}
	const char *mode = secure_getenv("UNSOCK_MODE");
	char mopt[32] = "";
	if (mode && *mode) {
		if (strspn(mode, "01234567") != strlen(mode) || strlen(mode) > 5) {
			struct rules_error e = { 0, 0, "UNSOCK_MODE is not an octal mode" };
			broken("UNSOCK_MODE", &e);
			return -1;
		}
		snprintf(mopt, sizeof mopt, " mode=%s", mode);
	}
	snprintf(text, sizeof text, "connect %s -> unix %s%s%%p.sock\nbind tcp %s -> unix %s%s%%p.sock%s source=%s\n",
		 a, dir, sep, a, dir, sep, mopt, flag);
	return load_text("UNSOCK_DIR", text, strlen(text));
}

/*
 * u-relay-tproxy's compiled rules file, as the sockgate rules it means
 * (core/urtfile.h). A file that fails a check is refused whole.
 */
static int load_urt(const char *path)
{
	size_t len;
	char *buf = file_read(path, &len), *text;
	struct rules_error e;

	memset(&e, 0, sizeof e);
	if (!buf) {
		snprintf(e.msg, sizeof e.msg, "cannot read %s: %s", path, strerror(errno));
		broken("URELAY_TPROXY_FILE", &e);
		return -1;
	}
	int r = urt_to_rules(buf, len, &text, &e);
	free(buf);
	if (r < 0) {
		char msg[sizeof e.msg];
		snprintf(msg, sizeof msg, "%s", e.msg);
		e.line = e.col = 0;
		snprintf(e.msg, sizeof e.msg, "%.60s: %.96s", path, msg);
		broken("URELAY_TPROXY_FILE", &e);
		return -1;
	}
	r = load_text(path, text, strlen(text));
	free(text);
	return r;
}

/* URELAY_TPROXY_IDX_FILES: the names type 4 rules send (authority-idx=). */
static int load_idx(const char *spec)
{
	struct urt_idxspec it[SG_IDX_MAX];
	struct rules_error e;

	memset(&e, 0, sizeof e);
	int n = urt_idxspec_parse(spec, it, SG_IDX_MAX, &e);
	if (n < 0) {
		broken("URELAY_TPROXY_IDX_FILES", &e);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct urt_idx *t = &sg_conf.idx[sg_conf.nidx];
		char *v = strndup(it[i].val, it[i].vlen);
		if (!v) {
			snprintf(e.msg, sizeof e.msg, "out of memory");
			broken("URELAY_TPROXY_IDX_FILES", &e);
			return -1;
		}
		t->idx = it[i].idx;
		t->is_file = it[i].is_file;
		if (!t->is_file) {
			t->data = (const uint8_t *)v;
			t->len = it[i].vlen;
			sg_conf.nidx++;
			continue;
		}
		size_t len;
		char *buf = file_read(v, &len);
		if (!buf || urt_idxfile_check(buf, len, &e) < 0) {
			char msg[sizeof e.msg];
			snprintf(msg, sizeof msg, "%s", buf ? e.msg : strerror(errno));
			snprintf(e.msg, sizeof e.msg, "%.60s: %.96s", v, msg);
			free(buf);
			free(v);
			broken("URELAY_TPROXY_IDX_FILES", &e);
			return -1;
		}
		free(v);
		t->data = (const uint8_t *)buf;
		t->len = len;
		sg_conf.nidx++;
	}
	return 0;
}

void sg_conf_load(void)
{
	const char *s;
	int saved = errno;

	if (getauxval(AT_SECURE))
		return;
	s = secure_getenv("SOCKGATE_STRICT");
	sg_conf.strict = s && !strcmp(s, "1");
	s = secure_getenv("UNSOCK_BLOCK_INET6");
	sg_conf.block_inet6 = s && *s && strcmp(s, "0");
	s = secure_getenv("URELAY_TPROXY_LOCAL_FLAGS");
	if (s && *s)
		sg_conf.hacks = (unsigned)strtoull(s, NULL, 0);

	s = secure_getenv("SOCKGATE_RULE");
	if (s && *s && load_text("SOCKGATE_RULE", s, strlen(s)) < 0)
		goto out;
	s = secure_getenv("SOCKGATE_RULES");
	if (s && *s && load_file(s) < 0)
		goto out;
	s = secure_getenv("UNSOCK_DIR");
	if (s && *s && load_unsock(s) < 0)
		goto out;
	s = secure_getenv("URELAY_TPROXY_FILE");
	if (s && *s && load_urt(s) < 0)
		goto out;
	s = secure_getenv("URELAY_TPROXY_IDX_FILES");
	if (s && *s && load_idx(s) < 0)
		goto out;
out:
	if (sg_conf.broken) {
		for (int i = 0; i < sg_conf.nrs; i++)
			rules_free(sg_conf.rs[i]);
		sg_conf.nrs = 0;
		sg_conf.have_connect = sg_conf.have_proxy = sg_conf.have_bind = sg_conf.have_resolve = 0;
		sg_conf.have_icmp = 0;
	}
	errno = saved;
}

const struct rule *sg_match(int dir, int proto, const struct sockaddr *sa, const struct ruleset **rsp)
{
	struct rules_query q = { .dir = dir, .proto = proto, .addr = sa, .peer = NULL };

	for (int i = 0; i < sg_conf.nrs; i++) {
		const struct rule *r = rules_match(sg_conf.rs[i], &q);
		if (r) {
			if (rsp)
				*rsp = sg_conf.rs[i];
			return r;
		}
	}
	return NULL;
}
