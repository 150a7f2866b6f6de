/*
 * Unit tests for core/elf: the interpreter of real programs (this test
 * itself, dynamically linked), a static-looking file, not ELF, and damaged
 * headers at every truncation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "elfinfo.h"
#include "unit.h"

int main(void)
{
	unsigned char b[8192];
	uint64_t off = 0, size = 0;
	int is64 = -1;
	int fd = open("/proc/self/exe", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, b, sizeof b) : -1;

	CHECK(n > 64, "read our own executable");
	CHECK(elf_interp(b, (size_t)n, &off, &size, &is64) == 1 && is64 == (sizeof(void *) == 8),
	      "a dynamically linked program has an interpreter");
	char interp[4097] = "";
	CHECK(size < sizeof interp && pread(fd, interp, (size_t)size, (off_t)off) == (ssize_t)size &&
		      interp[size - 1] == 0 && strstr(interp, "ld-"),
	      "its place names the loader (%s)", interp);
	close(fd);

	unsigned char s[8192];
	memcpy(s, b, (size_t)n);
	/* every program header of type PT_INTERP becomes PT_NULL: a static program */
	uint64_t phoff, phnum = s[56] | s[57] << 8, phent = s[54] | s[55] << 8;
	memcpy(&phoff, s + 32, 8);
	for (uint64_t i = 0; i < phnum; i++)
		if (s[phoff + i * phent] == 3)
			s[phoff + i * phent] = 0;
	CHECK(elf_interp(s, (size_t)n, &off, &size, &is64) == 0, "no PT_INTERP: static");
	CHECK(elf_interp("#!/bin/sh\n", 10, &off, &size, &is64) == -1 && errno == ENOEXEC, "a script is not ELF");
	int all = 1;
	for (size_t k = 0; k < phoff + phnum * phent; k++)
		if (elf_interp(b, k, &off, &size, &is64) != -1)
			all = 0;
	CHECK(all, "cut anywhere before the end of the program headers: refused");
	memcpy(s, b, (size_t)n);
	s[4] = 7;
	CHECK(elf_interp(s, (size_t)n, &off, &size, &is64) == -1 && errno == EINVAL, "a bad class");
	memcpy(s, b, (size_t)n);
	s[56] = 0xff;
	s[57] = 0xff;
	CHECK(elf_interp(s, (size_t)n, &off, &size, &is64) == -1 && errno == EINVAL, "a program header count past the end");
	return unit_done();
}
