// SPDX-License-Identifier: GPL-2.0-only
/*
 * insn-count: a QEMU TCG plugin that counts the instructions the guest
 * executes, kernel and user apart, and writes the running totals whenever
 * the guest executes a marker instruction.
 *
 * The marker is an instruction that does nothing and that no compiler
 * emits, carrying an id of 1-255, which bench/plugin/mark.c executes in the
 * guest: the guest brackets a piece of work with two markers and the
 * difference of the totals is the instructions that work cost, whatever the
 * host's load or speed was.
 *   x86-64:  nopl 0x??4f4956(%rax)      0f 1f 80 'V' 'I' 'O' id
 *   aarch64: movz xzr, #0x56??, lsl #48 (a write to the zero register)
 *
 *   qemu-system-x86_64|qemu-system-aarch64 -plugin insn-count.so,out=FILE[,prof=PFILE] ...
 *
 * FILE gets one line per marker executed:
 *   mark <id> vcpu <n> kernel <instructions> user <instructions>
 * with the totals over all vCPUs since QEMU started. Each vCPU counts into
 * its own slot (no shared counter between TCG threads); a marker sums the
 * slots. Counts are per translation block executed: a block left early by
 * an exception or interrupt counts whole, an error far below 1 % for the
 * figures this serves.
 *
 * With prof=PFILE as well, the plugin also counts how often each kernel
 * translation block runs, and at every marker appends the running totals
 * to PFILE:
 *   prof <id>
 *   <block address, hex> <instructions in the block> <executions>
 *   ...
 *   end
 * bench/insn-profile.py turns the difference between two markers into
 * guest kernel instructions per function (a profile that, like the totals,
 * does not depend on the host).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_VCPUS 64

/*
 * The lowest kernel address: the top half of the address space on x86-64
 * (4- and 5-level paging alike), everything from TTBR1's range on arm64
 * (48- or 52-bit VAs; user space stays below 2^52).
 */
#define KERNEL_START_X86_64 0xffff800000000000ULL
#define KERNEL_START_AARCH64 0xfff0000000000000ULL
static uint64_t kernel_start = KERNEL_START_X86_64;
static int target_aarch64;

struct vcpu_count {
	uint64_t insns[2];	/* [0] user, [1] kernel */
} __attribute__((aligned(64)));

static struct vcpu_count counts[MAX_VCPUS];
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;

/* One kernel block of the profile; its address is the hash key. */
struct prof_block {
	uint64_t vaddr;
	uint64_t execs;
	uint32_t insns;
	struct prof_block *next;
};

#define PROF_BUCKETS (1u << 16)

static struct prof_block *prof_table[PROF_BUCKETS];
static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *prof_out;

static const uint8_t marker[6] = { 0x0f, 0x1f, 0x80, 'V', 'I', 'O' };

/*
 * MOVZ (64-bit, hw=3) to XZR: 1 10 100101 11 imm16 11111. The id is the
 * low byte of imm16, whose high byte is 'V'.
 */
#define A64_MARK_MASK 0xffe0001fu
#define A64_MARK_BITS 0xd2e0001fu

/* The marker's id if @insn is one, else 0. */
static unsigned int marker_id(struct qemu_plugin_insn *insn)
{
	const uint8_t *b = qemu_plugin_insn_data(insn);
	uint32_t w;

	if (target_aarch64) {
		if (qemu_plugin_insn_size(insn) != 4)
			return 0;
		w = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
		    (uint32_t)b[3] << 24;
		if ((w & A64_MARK_MASK) != A64_MARK_BITS || ((w >> 13) & 0xff) != 'V')
			return 0;
		return (w >> 5) & 0xff;
	}
	if (qemu_plugin_insn_size(insn) == 7 && !memcmp(b, marker, 6))
		return b[6];
	return 0;
}

static void tb_exec(unsigned int vcpu, void *udata)
{
	uintptr_t v = (uintptr_t)udata;

	if (vcpu < MAX_VCPUS)
		counts[vcpu].insns[v & 1] += v >> 1;
}

static void prof_exec(unsigned int vcpu, void *udata)
{
	struct prof_block *b = udata;

	__atomic_fetch_add(&b->execs, 1, __ATOMIC_RELAXED);
}

/* The block at @vaddr, created on first translation (blocks are retranslated). */
static struct prof_block *prof_get(uint64_t vaddr, uint32_t insns)
{
	unsigned int h = (unsigned int)((vaddr * 0x9e3779b97f4a7c15ULL) >> 48);
	struct prof_block *b;

	pthread_mutex_lock(&prof_lock);
	for (b = prof_table[h]; b; b = b->next)
		if (b->vaddr == vaddr && b->insns == insns)
			break;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (b) {
			b->vaddr = vaddr;
			b->insns = insns;
			b->next = prof_table[h];
			prof_table[h] = b;
		}
	}
	pthread_mutex_unlock(&prof_lock);
	return b;
}

static void prof_dump(unsigned int id)
{
	struct prof_block *b;
	unsigned int h;

	pthread_mutex_lock(&prof_lock);
	fprintf(prof_out, "prof %u\n", id);
	for (h = 0; h < PROF_BUCKETS; h++)
		for (b = prof_table[h]; b; b = b->next) {
			uint64_t n = __atomic_load_n(&b->execs, __ATOMIC_RELAXED);

			if (n)
				fprintf(prof_out, "%" PRIx64 " %u %" PRIu64 "\n",
					b->vaddr, b->insns, n);
		}
	fprintf(prof_out, "end\n");
	fflush(prof_out);
	pthread_mutex_unlock(&prof_lock);
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
	if (prof_out)
		prof_dump((unsigned int)(uintptr_t)udata);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb), i;
	int kernel = qemu_plugin_tb_vaddr(tb) >= kernel_start;

	qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
					     (void *)(uintptr_t)(n << 1 | kernel));
	if (kernel && prof_out) {
		struct prof_block *b = prof_get(qemu_plugin_tb_vaddr(tb), n);

		if (b)
			qemu_plugin_register_vcpu_tb_exec_cb(tb, prof_exec,
							     QEMU_PLUGIN_CB_NO_REGS, b);
	}
	if (kernel)
		return;
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		unsigned int mark = marker_id(insn);

		if (mark)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, mark_exec,
							       QEMU_PLUGIN_CB_NO_REGS,
							       (void *)(uintptr_t)mark);
	}
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
	if (out)
		fclose(out);
	if (prof_out)
		fclose(prof_out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
					   const qemu_info_t *info,
					   int argc, char **argv)
{
	const char *path = NULL, *prof = NULL;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
		else if (!strncmp(argv[i], "prof=", 5))
			prof = argv[i] + 5;
	}
	if (!strcmp(info->target_name, "aarch64")) {
		target_aarch64 = 1;
		kernel_start = KERNEL_START_AARCH64;
	} else if (strcmp(info->target_name, "x86_64")) {
		fprintf(stderr, "insn-count: target %s not supported\n", info->target_name);
		return -1;
	}
	if (!path) {
		fprintf(stderr, "insn-count: out=FILE is required\n");
		return -1;
	}
	out = fopen(path, "a");
	if (!out) {
		perror(path);
		return -1;
	}
	if (prof) {
		prof_out = fopen(prof, "a");
		if (!prof_out) {
			perror(prof);
			return -1;
		}
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
