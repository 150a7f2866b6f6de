/*
 * elf: find PT_INTERP in an ELF file's program headers (layout in elfinfo.h).
 * Every offset and count is checked against the bytes given.
 */
#include <errno.h>
#include <string.h>

#include "elfinfo.h"

static uint64_t get(const uint8_t *p, int n, int be)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[be ? n - 1 - i : i] << (8 * i);
	return v;
}

#define PT_INTERP_TYPE 3

int elf_interp(const void *buf, size_t len, uint64_t *off, uint64_t *size, int *is64)
{
	const uint8_t *b = buf;

	if (len < 16 || memcmp(b, "\177ELF", 4))
		return errno = ENOEXEC, -1;
	if ((b[4] != 1 && b[4] != 2) || (b[5] != 1 && b[5] != 2) || b[6] != 1)
		return errno = EINVAL, -1;
	int w = b[4] == 2, be = b[5] == 2;
	size_t ehsize = w ? 64 : 52;
	if (len < ehsize)
		return errno = EINVAL, -1;
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
