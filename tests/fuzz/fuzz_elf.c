/*
 * libFuzzer target for core/elf: any bytes give -1, 0 or 1, never a read
 * outside them, and a found interpreter has a sane size.
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
	return 0;
}
