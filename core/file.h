/*
 * file: whole small files (rules) into memory, and the monotonic clock.
 */
#ifndef SOCKGATE_FILE_H
#define SOCKGATE_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Largest file read: rules files are far smaller. */
#define FILE_MAX (64u << 20)

/*
 * Read fd to its end: a malloc'd, NUL-terminated buffer and its length
 * (without the NUL), or NULL with errno (EFBIG past FILE_MAX). fd stays open.
 */
char *file_read_fd(int fd, size_t *len);

/* The same for a path (opened O_CLOEXEC, closed again). */
char *file_read(const char *path, size_t *len);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t mono_ms(void);

#endif
