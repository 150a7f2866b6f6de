/*
 * elf: the program interpreter and the section names of an ELF file
 * (layout in elfinfo.h). Every offset and count is checked against the
 * bytes given; elf_probe() reads no more than it needs, bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfinfo.h"

static uint64_t get(const uint8_t *p, int n, int be)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[be ? n - 1 - i : i] << (8 * i);
	return v;
}

#define PT_INTERP_TYPE 3
#define SH_MAX 4096		/* sections looked at */
#define NAMES_MAX (1u << 20)	/* bytes of section names read */

/* The ELF identification: 0 with the class and byte order, or -1. */
static int ident(const uint8_t *b, size_t len, int *w, int *be)
{
	if (len < 16 || memcmp(b, "\177ELF", 4))
		return errno = ENOEXEC, -1;
	if ((b[4] != 1 && b[4] != 2) || (b[5] != 1 && b[5] != 2) || b[6] != 1)
		return errno = EINVAL, -1;
	*w = b[4] == 2;
	*be = b[5] == 2;
	if (len < (*w ? 64u : 52u))
		return errno = EINVAL, -1;
	return 0;
}

int elf_interp(const void *buf, size_t len, uint64_t *off, uint64_t *size, int *is64)
{
	const uint8_t *b = buf;
	int w, be;

	if (ident(b, len, &w, &be) < 0)
		return -1;
	*is64 = w;
	uint64_t phoff = w ? get(b + 32, 8, be) : get(b + 28, 4, be);
	uint64_t phentsize = get(b + (w ? 54 : 42), 2, be), phnum = get(b + (w ? 56 : 44), 2, be);
	if (phentsize < (w ? 56u : 32u) || phoff > len || phnum > (len - phoff) / phentsize)
		return errno = EINVAL, -1;
	for (uint64_t i = 0; i < phnum; i++) {
		const uint8_t *ph = b + phoff + i * phentsize;
		if (get(ph, 4, be) != PT_INTERP_TYPE)
			continue;
		*off = w ? get(ph + 8, 8, be) : get(ph + 4, 4, be);
		*size = w ? get(ph + 32, 8, be) : get(ph + 16, 4, be);
		if (*size < 2 || *size > 4096 || *off > UINT64_MAX - *size)
			return errno = EINVAL, -1;
		return 1;
	}
	return 0;
}

int elf_shtab(const void *buf, size_t len, struct elf_shtab *t)
{
	const uint8_t *b = buf;
	int w, be;

	if (ident(b, len, &w, &be) < 0)
		return -1;
	memset(t, 0, sizeof *t);
	t->is64 = w;
	t->be = be;
	t->off = w ? get(b + 40, 8, be) : get(b + 32, 4, be);
	t->entsize = get(b + (w ? 58 : 46), 2, be);
	t->num = get(b + (w ? 60 : 48), 2, be);
	t->strndx = get(b + (w ? 62 : 50), 2, be);
	if (!t->off || !t->num) {
		t->num = 0;
		return 0;
	}
	if (t->entsize < (w ? 64u : 40u) || t->num > SH_MAX || t->strndx >= t->num)
		return errno = EINVAL, -1;
	return 0;
}

/* Section i's header, when it lies within the shlen bytes given. */
static const uint8_t *shdr(const void *sh, size_t shlen, const struct elf_shtab *t, uint64_t i)
{
	if (i >= t->num || t->entsize == 0 || i >= shlen / t->entsize)
		return NULL;
	return (const uint8_t *)sh + i * t->entsize;
}

int elf_shnames(const void *sh, size_t shlen, const struct elf_shtab *t, uint64_t *off, uint64_t *size)
{
	const uint8_t *s = shdr(sh, shlen, t, t->strndx);

	if (!s)
		return errno = EINVAL, -1;
	*off = t->is64 ? get(s + 24, 8, t->be) : get(s + 16, 4, t->be);
	*size = t->is64 ? get(s + 32, 8, t->be) : get(s + 20, 4, t->be);
	if (*off > UINT64_MAX - *size)
		return errno = EINVAL, -1;
	return 0;
}

int elf_has_section(const void *sh, size_t shlen, const struct elf_shtab *t, const char *names, size_t nlen,
		    const char *name)
{
	size_t want = strlen(name) + 1;

	for (uint64_t i = 0; i < t->num; i++) {
		const uint8_t *s = shdr(sh, shlen, t, i);
		if (!s)
			break;
		uint64_t at = get(s, 4, t->be);
		if (at < nlen && nlen - at >= want && !memcmp(names + at, name, want))
			return 1;
	}
	return 0;
}

/* n bytes at off of fd into a new buffer, or NULL. */
static void *read_at(int fd, uint64_t off, size_t n)
{
	void *b = n ? malloc(n) : NULL;
	if (b && pread(fd, b, n, (off_t)off) != (ssize_t)n) {
		free(b);
		b = NULL;
	}
	return b;
}

static int is_go(int fd, const uint8_t *head, size_t len)
{
	struct elf_shtab t;
	uint64_t noff, nsize;
	int go = 0;

	if (elf_shtab(head, len, &t) < 0 || !t.num || t.off > INT64_MAX)
		return 0;
	size_t shlen = (size_t)(t.num * t.entsize);
	void *sh = read_at(fd, t.off, shlen);
	if (sh && elf_shnames(sh, shlen, &t, &noff, &nsize) == 0 && noff <= INT64_MAX) {
		size_t nl = nsize > NAMES_MAX ? NAMES_MAX : (size_t)nsize;
		char *names = read_at(fd, noff, nl);
		go = names && (elf_has_section(sh, shlen, &t, names, nl, ".go.buildinfo") ||
			       elf_has_section(sh, shlen, &t, names, nl, ".note.go.buildid"));
		free(names);
	}
	free(sh);
	return go;
}

int elf_probe(const char *path, struct elf_prog *p)
{
	uint8_t head[8192];
	uint64_t off = 0, size = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(p, 0, sizeof *p);
	if (fd < 0)
		return -1;
	ssize_t n = pread(fd, head, sizeof head, 0);
	int r = n < 0 ? -1 : elf_interp(head, (size_t)n, &off, &size, &p->is64);
	if (r == 1 && (off > INT64_MAX || pread(fd, p->interp, (size_t)size, (off_t)off) != (ssize_t)size ||
		       p->interp[size - 1]))
		r = (errno = EINVAL, -1);
	if (r >= 0) {
		p->kind = r ? ELF_DYNAMIC : ELF_STATIC;
		if (is_go(fd, head, (size_t)n))
			p->kind = ELF_GO;
	} else {
		p->interp[0] = 0;
	}
	int e = errno;
	close(fd);
	errno = e;
	return r < 0 ? -1 : 0;
}
