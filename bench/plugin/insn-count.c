// SPDX-License-Identifier: GPL-2.0-only
/*
 * insn-count: a QEMU TCG plugin that counts the instructions the guest
 * executes, kernel and user apart, and writes the running totals whenever
 * the guest executes a marker instruction.
 *
 * The marker is a 7-byte NOP, "nopl 0x??4f4956(%rax)" (0f 1f 80 'V' 'I' 'O'
 * id), which bench/plugin/mark.c executes in the guest: the guest brackets
 * a piece of work with two markers and the difference of the totals is the
 * instructions that work cost, whatever the host's load or speed was.
 *
 *   qemu-system-x86_64 -plugin insn-count.so,out=FILE ...
 *
 * FILE gets one line per marker executed:
 *   mark <id> vcpu <n> kernel <instructions> user <instructions>
 * with the totals over all vCPUs since QEMU started. Each vCPU counts into
 * its own slot (no shared counter between TCG threads); a marker sums the
 * slots. Counts are per translation block executed: a block left early by
 * an exception or interrupt counts whole, an error far below 1 % for the
 * figures this serves.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_VCPUS 64
#define KERNEL_START 0xffff800000000000ULL

struct vcpu_count {
	uint64_t insns[2];	/* [0] user, [1] kernel */
} __attribute__((aligned(64)));

static struct vcpu_count counts[MAX_VCPUS];
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;

static const uint8_t marker[6] = { 0x0f, 0x1f, 0x80, 'V', 'I', 'O' };

static void tb_exec(unsigned int vcpu, void *udata)
{
	uintptr_t v = (uintptr_t)udata;

	if (vcpu < MAX_VCPUS)
		counts[vcpu].insns[v & 1] += v >> 1;
}

static void mark_exec(unsigned int vcpu, void *udata)
{
	uint64_t k = 0, u = 0;
	int i;

	for (i = 0; i < MAX_VCPUS; i++) {
		u += __atomic_load_n(&counts[i].insns[0], __ATOMIC_RELAXED);
		k += __atomic_load_n(&counts[i].insns[1], __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&out_lock);
	fprintf(out, "mark %u vcpu %u kernel %" PRIu64 " user %" PRIu64 "\n",
		(unsigned int)(uintptr_t)udata, vcpu, k, u);
	fflush(out);
	pthread_mutex_unlock(&out_lock);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb), i;
	int kernel = qemu_plugin_tb_vaddr(tb) >= KERNEL_START;

	qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
					     (void *)(uintptr_t)(n << 1 | kernel));
	if (kernel)
		return;
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		const uint8_t *b = qemu_plugin_insn_data(insn);

		if (qemu_plugin_insn_size(insn) == 7 && !memcmp(b, marker, 6))
			qemu_plugin_register_vcpu_insn_exec_cb(insn, mark_exec,
							       QEMU_PLUGIN_CB_NO_REGS,
							       (void *)(uintptr_t)b[6]);
	}
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
	if (out)
		fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
					   const qemu_info_t *info,
					   int argc, char **argv)
{
	const char *path = NULL;
	int i;

	for (i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
	if (!path) {
		fprintf(stderr, "insn-count: out=FILE is required\n");
		return -1;
	}
	out = fopen(path, "a");
	if (!out) {
		perror(path);
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
