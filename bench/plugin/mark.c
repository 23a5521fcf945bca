// SPDX-License-Identifier: GPL-2.0-only
/*
 * viommu-mark ID: execute the marker instruction of bench/plugin/insn-count.c
 * with ID (1-9), so that the plugin writes the guest's instruction totals.
 * Static, no libc: it runs in the benchmark's busybox initramfs. Built for
 * x86-64 and for aarch64 (bench/plugin/build.sh).
 */
#if defined(__x86_64__)
#define MARK(n) __asm__ volatile(".byte 0x0f, 0x1f, 0x80, 0x56, 0x49, 0x4f, " #n)

static void sys_exit(int code)
{
	__asm__ volatile("syscall" : : "a"(60), "D"(code) : "rcx", "r11", "memory");
	__builtin_unreachable();
}

void _start(void);
__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tcall start_c\n");
#elif defined(__aarch64__)
/* movz xzr, #(0x5600 + n), lsl #48 */
#define MARK(n) __asm__ volatile("movz xzr, #(0x5600 + " #n "), lsl #48")

static void sys_exit(int code)
{
	register long x0 __asm__("x0") = code;
	register long x8 __asm__("x8") = 93;	/* exit */

	__asm__ volatile("svc #0" : : "r"(x0), "r"(x8) : "memory");
	__builtin_unreachable();
}

void _start(void);
__asm__(".globl _start\n_start:\n\tmov x0, sp\n\tbl start_c\n");
#else
#error "viommu-mark: x86-64 or aarch64 only"
#endif

void start_c(long *sp)
{
	char **argv = (char **)(sp + 1);

	if (sp[0] < 2 || !argv[1][0] || argv[1][1])
		sys_exit(2);
	switch (argv[1][0]) {
	case '1': MARK(1); break;
	case '2': MARK(2); break;
	case '3': MARK(3); break;
	case '4': MARK(4); break;
	case '5': MARK(5); break;
	case '6': MARK(6); break;
	case '7': MARK(7); break;
	case '8': MARK(8); break;
	case '9': MARK(9); break;
	default: sys_exit(2);
	}
	sys_exit(0);
}
