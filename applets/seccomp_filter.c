/*
 * The seccomp filter of sockgate-run --seccomp (seccomp(2),
 * SECCOMP_SET_MODE_FILTER): a classic BPF program over struct seccomp_data
 * that returns SECCOMP_RET_USER_NOTIF, and so wakes the supervisor in
 * seccomp.c, only for the socket calls the rules in force can be about;
 * every other call is allowed by the kernel without a round trip. The
 * child in seccomp.c builds it from what the rules hold, just before it
 * installs it and execs the program. The calls it sends are the ones
 * on_notify() hands to a handler.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "seccomp_int.h"

#if defined(__x86_64__)
#define SG_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SG_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "sockgate-run --seccomp: add this architecture's AUDIT_ARCH value"
#endif

enum { L_ALLOW, L_NOTIFY, L_LEN2, L_LEN5, L_SENDTO, L_RECVFROM, L_GETOPT, L_LEVEL, L_NLABELS };
struct bpf {
	struct sock_filter f[96];
	int label[96];		/* a jump's target to fix: a label, or -1 (jt) */
	int flabel[96];		/* the same for jf */
	int at[L_NLABELS];	/* where each label is */
	int n;
};

static void op(struct bpf *b, uint16_t code, uint32_t k)
{
	b->f[b->n] = (struct sock_filter)BPF_STMT(code, k);
	b->label[b->n] = b->flabel[b->n] = -1;
	b->n++;
}

/* a conditional jump to label when true (or when false, for jf), on to the next instruction otherwise */
static void jmp2(struct bpf *b, uint16_t code, uint32_t k, int label, int flabel)
{
	b->f[b->n] = (struct sock_filter)BPF_JUMP(BPF_JMP | code | BPF_K, k, 0, 0);
	b->label[b->n] = label;
	b->flabel[b->n] = flabel;
	b->n++;
}

static void jmp(struct bpf *b, uint16_t code, uint32_t k, int label)
{
	jmp2(b, code, k, label, -1);
}

static void here(struct bpf *b, int label)
{
	b->at[label] = b->n;
}

static void ld_arg(struct bpf *b, int i, int high)
{
	op(b, BPF_LD | BPF_W | BPF_ABS, (uint32_t)(offsetof(struct seccomp_data, args[i]) + (high ? 4 : 0)));
}

/* an address length argument (the low 32 bits: socklen_t is an int; little-endian) worth a look */
static void addrlen_check(struct bpf *b, int arg, int strict)
{
	ld_arg(b, arg, 0);
	if (strict) {
		jmp(b, BPF_JGE, 16, L_NOTIFY);
	} else {
		jmp(b, BPF_JEQ, sizeof(struct sockaddr_in), L_NOTIFY);
		jmp(b, BPF_JEQ, sizeof(struct sockaddr_in6), L_NOTIFY);
		jmp(b, BPF_JGT, sizeof(struct sockaddr_un), L_NOTIFY);
	}
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
}

/* a pointer argument: NULL passes, anything else comes here */
static void null_check(struct bpf *b, int arg, int then)
{
	ld_arg(b, arg, 0);
	jmp2(b, BPF_JEQ, 0, -1, then);
	ld_arg(b, arg, 1);
	jmp2(b, BPF_JEQ, 0, -1, then);
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
}

/*
 * The filter: other architectures' and x32 calls are allowed (not covered,
 * see the man page); connect()/bind() go to the supervisor only with an
 * address length an inet address has (16, 28, or more than any Unix
 * address, as with sizeof(struct sockaddr_storage)), or any length from 16
 * on when a reject rule must see every inet address. With datagram
 * rules: sendto() with an address (checked the same way), recvfrom() with
 * room for one, and sendmsg()/recvmsg() always (the address is behind a
 * pointer BPF cannot follow). When a rule can put a socket of ours in the
 * program's place: setsockopt() and getsockopt() at the TCP, IP and IPv6
 * levels (and UDP's, with datagram rules), and getsockopt() of
 * SO_DOMAIN, SO_PROTOCOL (and, with fdpass rules, whose receiver is a
 * datagram socket, SO_TYPE); the supervisor lets those of other sockets
 * go on.
 */
void build_filter(struct sock_fprog *prog, int strict, int binds, int fdpass, int dgrams, int swaps)
{
	static struct bpf filter;
	struct bpf *b = &filter;

	b->n = 0;
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	jmp2(b, BPF_JEQ, SG_AUDIT_ARCH, -1, L_ALLOW);
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	jmp(b, BPF_JGE, 0x40000000u, L_ALLOW);	/* __X32_SYSCALL_BIT */
#endif
	jmp(b, BPF_JEQ, __NR_connect, L_LEN2);
	if (binds)
		jmp(b, BPF_JEQ, __NR_bind, L_LEN2);
	jmp(b, BPF_JEQ, __NR_getsockname, L_NOTIFY);
	jmp(b, BPF_JEQ, __NR_getpeername, L_NOTIFY);
	if (binds) {
#ifdef __NR_accept
		jmp(b, BPF_JEQ, __NR_accept, L_NOTIFY);
#endif
		jmp(b, BPF_JEQ, __NR_accept4, L_NOTIFY);
	}
	if (fdpass)
		jmp(b, BPF_JEQ, __NR_listen, L_NOTIFY);
	if (dgrams) {
		jmp(b, BPF_JEQ, __NR_sendto, L_SENDTO);
		jmp(b, BPF_JEQ, __NR_recvfrom, L_RECVFROM);
		jmp(b, BPF_JEQ, __NR_sendmsg, L_NOTIFY);
		jmp(b, BPF_JEQ, __NR_recvmsg, L_NOTIFY);
	}
	if (swaps) {
		jmp(b, BPF_JEQ, __NR_setsockopt, L_LEVEL);
		jmp(b, BPF_JEQ, __NR_getsockopt, L_GETOPT);
	}
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	/* BPF jumps only forward: the blocks, then the two answers */
	here(b, L_LEN2);
	addrlen_check(b, 2, strict);
	if (dgrams) {
		here(b, L_SENDTO);
		null_check(b, 4, L_LEN5);
		here(b, L_LEN5);
		addrlen_check(b, 5, strict);
		here(b, L_RECVFROM);
		null_check(b, 4, L_NOTIFY);
	}
	if (swaps) {
		/* level and name are ints: the low 32 bits (little-endian) are what the kernel reads */
		here(b, L_GETOPT);
		ld_arg(b, 1, 0);
		jmp2(b, BPF_JEQ, SOL_SOCKET, -1, L_LEVEL);
		ld_arg(b, 2, 0);
		jmp(b, BPF_JEQ, SO_DOMAIN, L_NOTIFY);
		jmp(b, BPF_JEQ, SO_PROTOCOL, L_NOTIFY);
		if (fdpass)
			jmp(b, BPF_JEQ, SO_TYPE, L_NOTIFY);
		op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		here(b, L_LEVEL);
		ld_arg(b, 1, 0);
		jmp(b, BPF_JEQ, IPPROTO_TCP, L_NOTIFY);
		jmp(b, BPF_JEQ, IPPROTO_IP, L_NOTIFY);
		jmp(b, BPF_JEQ, IPPROTO_IPV6, L_NOTIFY);
		if (dgrams)
			jmp(b, BPF_JEQ, IPPROTO_UDP, L_NOTIFY);
		op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	}
	here(b, L_ALLOW);
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	here(b, L_NOTIFY);
	op(b, BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	for (int i = 0; i < b->n; i++) {
		if (b->label[i] >= 0)
			b->f[i].jt = (uint8_t)(b->at[b->label[i]] - i - 1);
		if (b->flabel[i] >= 0)
			b->f[i].jf = (uint8_t)(b->at[b->flabel[i]] - i - 1);
	}
	prog->len = (unsigned short)b->n;
	prog->filter = b->f;
}
