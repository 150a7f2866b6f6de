/*
 * elf: what sockgate-run needs to know of a program before it runs it —
 * its class, its program interpreter (PT_INTERP: glibc's, musl's, or none
 * for a static program), and whether it is a Go program (Go's sections,
 * .go.buildinfo or .note.go.buildid: Go calls the kernel without libc even
 * when linked dynamically). ELF-64 and ELF-32, either byte order (the
 * System V gABI, "ELF Header", "Program Header", "Sections"). The parsers
 * are pure (bytes given, every offset checked against them); elf_probe()
 * is the one reader of a file, used both to choose the library and to name
 * --seccomp.
 */
#ifndef SOCKGATE_ELF_H
#define SOCKGATE_ELF_H

#include <stddef.h>
#include <stdint.h>

/*
 * buf holds the file's first len bytes. Returns 1 and the interpreter
 * string's place in the file (*off, *size, its NUL included) when there
 * is a PT_INTERP; 0 when there is none (a static program); -1 with errno
 * ENOEXEC when this is not an ELF file, EINVAL when its headers are
 * malformed or reach past len. *is64 says the class (when not -1).
 */
int elf_interp(const void *buf, size_t len, uint64_t *off, uint64_t *size, int *is64);

/* The section header table, as the ELF header (the file's first bytes) places it. */
struct elf_shtab {
	uint64_t off, num, entsize, strndx;
	int is64, be;
};

/* 0 (num 0: no sections), or -1 with errno as elf_interp(). */
int elf_shtab(const void *buf, size_t len, struct elf_shtab *t);

/*
 * sh holds the section header table (shlen bytes, t as elf_shtab() gave it):
 * the place of the section names (*off, *size in the file), 0; -1 EINVAL.
 */
int elf_shnames(const void *sh, size_t shlen, const struct elf_shtab *t, uint64_t *off, uint64_t *size);

/* 1 when a section of sh is called name (names: nlen bytes of the names section), else 0. */
int elf_has_section(const void *sh, size_t shlen, const struct elf_shtab *t, const char *names, size_t nlen,
		    const char *name);

/* What a program is, for the library: */
#define ELF_DYNAMIC 0	/* has an interpreter: the library loads */
#define ELF_STATIC 1	/* no interpreter: out of the library's reach */
#define ELF_GO 2	/* Go, linked either way: calls the kernel itself */

struct elf_prog {
	int kind, is64;
	char interp[4097];	/* "" when none */
};

/*
 * Read the program at path: 0 and *p, or -1 with errno (ENOEXEC not an ELF
 * file, EINVAL malformed, or open()'s). Reads the first 8 KiB, the
 * interpreter's name, and the section headers and names (bounded).
 */
int elf_probe(const char *path, struct elf_prog *p);

#endif
