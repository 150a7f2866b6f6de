/*
 * stcli ADDR PORT [PROGRAM ARGS...]: a client built with musl-gcc -static,
 * so no preload reaches it. Connects (blocking) to ADDR:PORT, prints
 * "PID: peer A:P" (getpeername), sends "hello PID\n", prints the line it
 * gets back; then, with more arguments, forks and execs PROGRAM and exits
 * with its status. Exit 1 with "PID: connect: REASON" when it cannot.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	char buf[256], host[64];
	int pid = (int)getpid();

	if (argc < 3)
		return 100;
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, argv[1], &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((unsigned short)atoi(argv[2]));
		len = sizeof *a4;
	} else if (inet_pton(AF_INET6, argv[1], &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((unsigned short)atoi(argv[2]));
		len = sizeof *a6;
	} else {
		return 100;
	}
	int s = socket(ss.ss_family, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "%d: connect: %s\n", pid, strerror(errno));
		return 1;
	}
	len = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (getpeername(s, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET)
		printf("%d: peer %s:%d\n", pid, inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host), ntohs(a4->sin_port));
	else if (ss.ss_family == AF_INET6)
		printf("%d: peer [%s]:%d\n", pid, inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host), ntohs(a6->sin6_port));
	else
		printf("%d: peer of family %d\n", pid, ss.ss_family);
	int n = snprintf(buf, sizeof buf, "hello %d\n", pid);
	if (write(s, buf, (size_t)n) != n)
		return 1;
	ssize_t got = read(s, buf, sizeof buf - 1);
	printf("%d: got %.*s", pid, got > 0 ? (int)got : 0, buf);
	fflush(stdout);
	close(s);
	if (argc > 3) {
		pid_t c = fork();
		if (c == 0) {
			execv(argv[3], argv + 3);
			_exit(127);
		}
		int st;
		if (c < 0 || waitpid(c, &st, 0) < 0)
			return 1;
		return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	return 0;
}
