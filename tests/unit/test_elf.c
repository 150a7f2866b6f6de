/*
 * Unit tests for core/elf: the interpreter of real programs (this test
 * itself, dynamically linked), a static-looking file, not ELF, damaged
 * headers at every truncation; the section names (a Go program is told by
 * its .go.buildinfo section) and elf_probe() on files written here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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

	/* elf_probe(): ourselves, a copy made static, a copy made Go by renaming a section */
	struct elf_prog p;
	CHECK(elf_probe("/proc/self/exe", &p) == 0 && p.kind == ELF_DYNAMIC && strstr(p.interp, "ld-"),
	      "elf_probe: this program is dynamic (%s)", p.interp);
	static unsigned char whole[1 << 22];
	fd = open("/proc/self/exe", O_RDONLY);
	ssize_t wn = fd >= 0 ? read(fd, whole, sizeof whole) : -1;
	close(fd);
	CHECK(wn > 0 && wn < (ssize_t)sizeof whole, "read all of our executable (%zd bytes)", wn);
	struct elf_shtab t;
	uint64_t noff = 0, nsize = 0;
	CHECK(elf_shtab(whole, (size_t)wn, &t) == 0 && t.num > 0 && t.off + t.num * t.entsize <= (uint64_t)wn,
	      "the section header table lies within the file");
	const unsigned char *sh = whole + t.off;
	size_t shlen = (size_t)(t.num * t.entsize);
	CHECK(elf_shnames(sh, shlen, &t, &noff, &nsize) == 0 && noff + nsize <= (uint64_t)wn, "the names section");
	char *names = (char *)whole + noff;
	CHECK(elf_has_section(sh, shlen, &t, names, (size_t)nsize, ".text") &&
		      !elf_has_section(sh, shlen, &t, names, (size_t)nsize, ".go.buildinfo") &&
		      !elf_has_section(sh, shlen, &t, names, (size_t)nsize, ".tex"),
	      "a section found by its whole name only");
	CHECK(!elf_has_section(sh, 0, &t, names, (size_t)nsize, ".text"), "no section headers: nothing found");
	char tmpl[] = "/tmp/sg-elf-XXXXXX";
	int tf = mkstemp(tmpl);
	CHECK(tf >= 0 && write(tf, whole, (size_t)wn) == wn && elf_probe(tmpl, &p) == 0 && p.kind == ELF_DYNAMIC,
	      "a copy: dynamic");
	/* Go's section name in place of a longer one of ours */
	char *longer = memmem(names, (size_t)nsize, ".note.gnu.build-id", 19);
	CHECK(longer != NULL, "a .note.gnu.build-id section to rename");
	if (longer) {
		memcpy(longer, ".go.buildinfo", 14);
		CHECK(pwrite(tf, whole, (size_t)wn, 0) == wn && elf_probe(tmpl, &p) == 0 && p.kind == ELF_GO,
		      "a program with a .go.buildinfo section is Go");
	}
	memcpy(s, whole, (size_t)n);
	for (uint64_t i = 0; i < phnum; i++)
		if (s[phoff + i * phent] == 3)
			s[phoff + i * phent] = 0;
	CHECK(pwrite(tf, s, (size_t)n, 0) == n && elf_probe(tmpl, &p) == 0 && p.kind != ELF_DYNAMIC && !p.interp[0],
	      "no interpreter: not dynamic");
	CHECK(pwrite(tf, "#!/bin/sh\n", 10, 0) == 10 && ftruncate(tf, 10) == 0 && elf_probe(tmpl, &p) == -1 &&
		      errno == ENOEXEC, "a script: ENOEXEC");
	CHECK(elf_probe("/nonexistent/sg", &p) == -1 && errno == ENOENT, "a missing file: open()'s errno");
	close(tf);
	unlink(tmpl);
	return unit_done();
}
