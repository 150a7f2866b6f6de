/*
 * libFuzzer target for core/elf: any bytes give -1, 0 or 1, never a read
 * outside them, and a found interpreter has a sane size; the section
 * header table and names, taken from the same bytes, are read within them.
 */
#include <stdlib.h>

#include "elfinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t off, len;
	int is64;
	int r = elf_interp(data, size, &off, &len, &is64);
	if (r < -1 || r > 1 || (r == 1 && (len < 2 || len > 4096)))
		abort();
	struct elf_shtab t;
	uint64_t noff, nsize;
	if (elf_shtab(data, size, &t) == 0 && t.num && t.off < size) {
		const uint8_t *sh = data + t.off;
		size_t shlen = size - (size_t)t.off;
		if (elf_shnames(sh, shlen, &t, &noff, &nsize) == 0 && noff < size) {
			size_t nl = size - (size_t)noff < nsize ? size - (size_t)noff : (size_t)nsize;
			elf_has_section(sh, shlen, &t, (const char *)data + noff, nl, ".go.buildinfo");
		}
	}
	return 0;
}
