/*
 * elf: where an ELF file's program interpreter (PT_INTERP) is named, read
 * from the first bytes of the file (the ELF header and program headers),
 * so that sockgate-run can tell a glibc program from a musl one from a
 * static one. ELF-64 and ELF-32, either byte order (the System V gABI,
 * "ELF Header" and "Program Header").
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

#endif
