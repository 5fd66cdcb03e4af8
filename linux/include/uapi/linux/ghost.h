/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ghost-rs: userspace ABI of the ghOSt scheduling class, ABI version 91.
 *
 * This header is the single source of truth for every layout shared between
 * the kernel and ghOSt agents: messages and the queue ring, status words,
 * transactions and the per-CPU cpu_data page, and the arguments of the
 * GHOST_IOC_* ioctls on an enclave's ctl file (and of the ghost_run syscall).
 * The Rust kernel side reads it through the generated uapi bindings, and
 * userspace/ghost-abi mirrors it (a test compares every size, offset and
 * constant against this file).
 *
 * Layout notes (x86_64, the only architecture ghOSt supports):
 *  - times are in nanoseconds; "gtid" is a ghost thread id (see GHOST_*_GTID);
 *  - boolean message fields are one byte holding 0 or 1;
 *  - pointer-valued ioctl fields are pointers (x86_64 only: 8 bytes);
 *  - messages in the queue ring are only 4-byte aligned, so __u64 payload
 *    fields there must be read with unaligned loads.
 *
 * Every name of ghOSt's ABI 91 header is here, with the same meaning, so that
 * a program written against ghOSt's header compiles against this one. Names
 * this project adds: GHOST_SUPER_MAGIC, __NR_ghost_run and
 * GHOST_NO_SYNC_GROUP_OWNER.
 */
#ifndef _UAPI_LINUX_GHOST_H
#define _UAPI_LINUX_GHOST_H

#include <linux/types.h>
#include <linux/ioctl.h>

#ifdef __KERNEL__
#include <linux/limits.h>
#else
#include <limits.h>
#include <sched.h>
#endif

/* ABI version; /sys/fs/ghost/version lists it. */
#define GHOST_VERSION		91

/* Scheduling policy number of the ghost class (sched_setscheduler). */
#ifndef SCHED_GHOST
#define SCHED_GHOST		18
#endif

/* f_type of the ghostfs filesystem (mounted on /sys/fs/ghost). */
#define GHOST_SUPER_MAGIC	0xBAD1DEA2

/*
 * ghost_run(): the GHOST_IOC_RUN operation as a system call (same arguments as
 * struct ghost_ioc_run, same semantics). First free x86_64 number on 6.12.
 */
#ifdef __x86_64__
#ifndef __NR_ghost_run
#define __NR_ghost_run		463
#endif
#endif

/* Alignment of shared structures: a cache line, and a page. */
#define __ghost_cacheline_aligned	__attribute__((__aligned__(64)))
#define __ghost_page_aligned		__attribute__((__aligned__(4096)))

/* Kind of a message source or a status word owner (4 bytes). */
enum ghost_type {
	GHOST_AGENT = 0,	/* an agent; the source arg is a CPU */
	GHOST_TASK = 1		/* a ghost task; the source arg is a gtid */
};

/* A message source: a task (by gtid) or an agent (by CPU). 16 bytes. */
struct ghost_msg_src {
	enum ghost_type type;	/* GHOST_AGENT or GHOST_TASK */
	__u64 arg;		/* gtid for GHOST_TASK, CPU for GHOST_AGENT */
};

/* Maximum number of wakeup CPUs of a queue (GHOST_IOC_CONFIG_QUEUE_WAKEUP). */
#define GHOST_MAX_WINFO		2

/* A CPU whose agent is woken when a queue receives a message. 8 bytes. */
struct ghost_agent_wakeup {
	__s32 cpu;		/* CPU whose agent is woken */
	__s32 prio;		/* must be 0 */
};

/* Location of a status word: region id and index in that region. 8 bytes. */
struct ghost_sw_info {
	__u32 id;		/* status word region id (sw_regions/sw_<id>) */
	__u32 index;		/* index in the region's status word array */
};

/* Special gtids (struct ghost_txn.gtid, struct ghost_ioc_run.gtid). */
#define GHOST_NULL_GTID		0	/* no task / current task */
#define GHOST_AGENT_GTID	(-1)	/* the CPU's agent (a ping) */
#define GHOST_IDLE_GTID		(-2)	/* the idle task */

/* Versions of the shared structures (their "version" field). */
#define GHOST_QUEUE_VERSION	0	/* struct ghost_queue_header */
#define GHOST_SW_REGION_VERSION	0	/* struct ghost_sw_region_header */
#define GHOST_TXN_VERSION	0	/* struct ghost_txn */

/* Maximum number of 8-byte slots of a queue ring (a power of two). */
#define GHOST_MAX_QUEUE_ELEMS	65536

/*
 * Queues.
 *
 * mmap of a queue fd: a ghost_queue_header, then at byte offset "start" a
 * ghost_ring whose msgs[] has "nelems" 8-byte slots. A message of "length"
 * bytes occupies ceil(length / 8) consecutive slots; its payload begins at the
 * next slot. head and tail are free-running counters (slot = counter &
 * (nelems - 1)); the kernel advances head, the agent advances tail.
 */

/* Header at offset 0 of a queue mapping. 64 bytes. */
struct ghost_queue_header {
	__u32 version;		/* GHOST_QUEUE_VERSION */
	__u32 start;		/* byte offset of struct ghost_ring (64) */
	__u32 nelems;		/* number of slots in ghost_ring.msgs[] */
} __ghost_cacheline_aligned;

/* Message header; the payload follows it. 8 bytes. */
struct ghost_msg {
	__u16 type;		/* MSG_* */
	__u16 length;		/* bytes, including this 8-byte header */
	__u32 seqnum;		/* source's barrier after this message */
	__u32 payload[0];	/* type-specific ghost_msg_payload_* */
};

/* A ring counter: written by one side, read by the other. */
#ifdef __cplusplus
#include <atomic>
typedef std::atomic<__u32> _ghost_ring_index_t;
#else
typedef volatile __u32 _ghost_ring_index_t;
#endif

/* The ring at header.start. 12 bytes plus the message slots. */
struct ghost_ring {
	_ghost_ring_index_t head;	/* producer (kernel) counter, in slots */
	_ghost_ring_index_t tail;	/* consumer (agent) counter, in slots */
	_ghost_ring_index_t overflow;	/* messages dropped: the ring was full */
	struct ghost_msg msgs[0];	/* nelems slots */
};

/* Message type ranges: 64 task types, then 64 CPU types. */
#define _MSG_TASK_FIRST		64
#define _MSG_TASK_LAST		127
#define _MSG_CPU_FIRST		128
#define _MSG_CPU_LAST		191

/* Message types (struct ghost_msg.type). */
#define MSG_NOP				0	/* ring padding; no payload */

#define MSG_TASK_DEAD			64	/* ghost_msg_payload_task_dead */
#define MSG_TASK_BLOCKED		65	/* ghost_msg_payload_task_blocked */
#define MSG_TASK_WAKEUP			66	/* ghost_msg_payload_task_wakeup */
#define MSG_TASK_NEW			67	/* ghost_msg_payload_task_new */
#define MSG_TASK_PREEMPT		68	/* ghost_msg_payload_task_preempt */
#define MSG_TASK_YIELD			69	/* ghost_msg_payload_task_yield */
#define MSG_TASK_DEPARTED		70	/* ghost_msg_payload_task_departed */
#define MSG_TASK_SWITCHTO		71	/* ghost_msg_payload_task_switchto */
#define MSG_TASK_AFFINITY_CHANGED	72	/* ..._task_affinity_changed */
#define MSG_TASK_ON_CPU			73	/* ghost_msg_payload_task_on_cpu */
#define MSG_TASK_PRIORITY_CHANGED	74	/* ..._task_priority_changed */
#define MSG_TASK_LATCH_FAILURE		75	/* ..._task_latch_failure */

#define MSG_CPU_TICK			128	/* ghost_msg_payload_cpu_tick */
#define MSG_CPU_TIMER_EXPIRED		129	/* ghost_msg_payload_timer */
#define MSG_CPU_NOT_IDLE		130	/* ghost_msg_payload_cpu_not_idle */
#define MSG_CPU_AVAILABLE		131	/* ghost_msg_payload_cpu_available */
#define MSG_CPU_BUSY			132	/* ghost_msg_payload_cpu_busy */
#define MSG_CPU_AGENT_BLOCKED		133	/* ghost_msg_payload_agent_blocked */
#define MSG_CPU_AGENT_WAKEUP		134	/* ghost_msg_payload_agent_wakeup */

/*
 * Message payloads. "runtime" is the task's cumulative CPU time (ns);
 * "cpu_seqnum" is the CPU's sequence number (bumped for every per-CPU message
 * and every latch); "agent_data" is opaque to the kernel (set by BPF).
 */

/* MSG_TASK_NEW: a task entered ghost (or was discovered). 48 bytes. */
struct ghost_msg_payload_task_new {
	__u64 gtid;
	__u64 parent_gtid;	/* gtid of the parent, if it is a ghost task */
	__u64 runtime;		/* ns */
	__u16 runnable;		/* 1 if the task is runnable */
	__s32 nice;		/* nice value, -20..19 */
	struct ghost_sw_info sw_info;	/* the task's status word */
	__u64 agent_data;
};

/* MSG_TASK_PREEMPT: a running or latched task lost its CPU. 40 bytes. */
struct ghost_msg_payload_task_preempt {
	__u64 gtid;
	__u64 runtime;		/* ns */
	__u64 cpu_seqnum;
	__u64 agent_data;
	__s32 cpu;		/* CPU the task was preempted on */
	__u8 from_switchto;	/* bool: preempted while in a switchto chain */
	__u8 was_latched;	/* bool: the task was latched, not running */
};

/* MSG_TASK_YIELD: a task called sched_yield(). 40 bytes. */
struct ghost_msg_payload_task_yield {
	__u64 gtid;
	__u64 runtime;		/* ns */
	__u64 cpu_seqnum;
	__u64 agent_data;
	__s32 cpu;
	__u8 from_switchto;	/* bool */
};

/* MSG_TASK_BLOCKED: a task blocked. 32 bytes. */
struct ghost_msg_payload_task_blocked {
	__u64 gtid;
	__u64 runtime;		/* ns */
	__u64 cpu_seqnum;
	__s32 cpu;
	__u8 from_switchto;	/* bool */
};

/* MSG_TASK_DEAD: a task exited. 16 bytes. */
struct ghost_msg_payload_task_dead {
	__u64 gtid;
	__s32 cpu;		/* CPU the task died on (v89+) */
};

/* MSG_TASK_DEPARTED: a task left ghost (its status word is CANFREE). 24 bytes. */
struct ghost_msg_payload_task_departed {
	__u64 gtid;
	__u64 cpu_seqnum;
	__s32 cpu;
	__u8 from_switchto;	/* bool */
	__u8 was_current;	/* bool: the task was running when it left */
};

/* MSG_TASK_WAKEUP: a task became runnable. 32 bytes. */
struct ghost_msg_payload_task_wakeup {
	__u64 gtid;
	__u64 agent_data;
	__u8 deferrable;	/* bool: the wakeup may be handled lazily */
	__s32 last_ran_cpu;	/* CPU the task last ran on */
	__s32 wake_up_cpu;	/* CPU the task was woken up on */
	__s32 waker_cpu;	/* CPU of the waker */
};

/* MSG_TASK_SWITCHTO: a task switched to another task directly. 32 bytes. */
struct ghost_msg_payload_task_switchto {
	__u64 gtid;
	__u64 runtime;		/* ns */
	__u64 cpu_seqnum;
	__s32 cpu;
};

/* MSG_TASK_AFFINITY_CHANGED: a task's CPU affinity changed. 8 bytes. */
struct ghost_msg_payload_task_affinity_changed {
	__u64 gtid;
};

/* MSG_TASK_PRIORITY_CHANGED: a task's nice value changed. 16 bytes. */
struct ghost_msg_payload_task_priority_changed {
	__u64 gtid;
	__s32 nice;		/* new nice value, -20..19 */
};

/*
 * MSG_TASK_ON_CPU (formerly TASK_LATCHED): a task committed with
 * SEND_TASK_ON_CPU got on its CPU. 32 bytes.
 */
struct ghost_msg_payload_task_on_cpu {
	__u64 gtid;
	__u64 commit_time;	/* ns (ktime) when the txn committed */
	__u64 cpu_seqnum;
	__s32 cpu;
};

/*
 * MSG_TASK_LATCH_FAILURE: a task latched by a BPF program could not be run.
 * 16 bytes. (ghost-rs has no BPF and never sends it.) The second field is
 * "errno", as in ghOSt; a C program that included <errno.h> first, where
 * errno is a macro, sees it as "err" (same offset and type).
 */
struct ghost_msg_payload_task_latch_failure {
	__u64 gtid;
#if defined(__KERNEL__) || !defined(errno)
	__s32 errno;		/* positive errno value */
#else
	__s32 err;		/* positive errno value */
#endif
};

/* MSG_CPU_TICK: a timer tick on a CPU (deliver_ticks). 8 bytes. */
struct ghost_msg_payload_cpu_tick {
	__s32 cpu;
	__s32 is_agent;		/* 1 if the agent was running (v90+) */
};

/* MSG_CPU_TIMER_EXPIRED: a ghost timerfd expired. 24 bytes. */
struct ghost_msg_payload_timer {
	__s32 cpu;		/* struct timerfd_ghost.cpu */
	__u64 type;		/* struct timerfd_ghost.type */
	__u64 cookie;		/* struct timerfd_ghost.cookie */
};

/* MSG_CPU_NOT_IDLE: a CPU left idle for a non-ghost task (NEED_CPU_NOT_IDLE). 16 bytes. */
struct ghost_msg_payload_cpu_not_idle {
	__s32 cpu;
	__u64 next_gtid;	/* gtid of the task that got the CPU */
};

/* MSG_CPU_AVAILABLE: no higher-class work on the CPU any more. 4 bytes. */
struct ghost_msg_payload_cpu_available {
	__s32 cpu;
};

/* MSG_CPU_BUSY: a higher class took the CPU. 4 bytes. */
struct ghost_msg_payload_cpu_busy {
	__s32 cpu;
};

/* MSG_CPU_AGENT_BLOCKED: the CPU's agent blocked in ghost_run. 4 bytes. */
struct ghost_msg_payload_agent_blocked {
	__s32 cpu;
};

/* MSG_CPU_AGENT_WAKEUP: the CPU's agent was woken. 4 bytes. */
struct ghost_msg_payload_agent_wakeup {
	__s32 cpu;
};

/*
 * BPF (ghOSt's BPF program types are not part of ghost-rs; the layouts are
 * ABI 91's, for programs that name them).
 */

/* What a BPF_GHOST_MSG_SEND program sees: a message about to be sent. */
struct bpf_ghost_msg {
	union {
		struct ghost_msg_payload_task_dead		dead;
		struct ghost_msg_payload_task_blocked		blocked;
		struct ghost_msg_payload_task_wakeup		wakeup;
		struct ghost_msg_payload_task_new		newt;
		struct ghost_msg_payload_task_preempt		preempt;
		struct ghost_msg_payload_task_yield		yield;
		struct ghost_msg_payload_task_departed		departed;
		struct ghost_msg_payload_task_switchto		switchto;
		struct ghost_msg_payload_task_affinity_changed	affinity;
		struct ghost_msg_payload_task_priority_changed	priority;
		struct ghost_msg_payload_task_on_cpu		on_cpu;
		struct ghost_msg_payload_task_latch_failure	latch_failure;
		struct ghost_msg_payload_cpu_tick		cpu_tick;
		struct ghost_msg_payload_timer			timer;
		struct ghost_msg_payload_cpu_not_idle		cpu_not_idle;
		struct ghost_msg_payload_cpu_available		cpu_available;
		struct ghost_msg_payload_cpu_busy		cpu_busy;
		struct ghost_msg_payload_agent_blocked		agent_blocked;
		struct ghost_msg_payload_agent_wakeup		agent_wakeup;
	};
	__u16 type;		/* MSG_* */
	__u32 seqnum;
	__s32 pref_cpu;		/* CPU whose agent to wake, or BPF_GHOST_MSG_* */
};

/* bpf_ghost_msg.pref_cpu */
#define BPF_GHOST_MSG_NO_WAKEUP_PREF	-1	/* the default */
#define BPF_GHOST_MSG_SKIP_AGENT_WAKE	-2	/* wake no agent */

/* The context of a BPF_GHOST_SCHED_PNT program. */
struct bpf_ghost_sched {
	__u8 agent_on_rq;	/* there is an agent; it can run if poked */
	__u8 agent_runnable;	/* there is an agent; it will run */
	__u8 might_yield;	/* another class probably wants the CPU */
	__u8 dont_idle;		/* set to keep the CPU from idling */
	__u8 must_resched;	/* set to force prev off the CPU */
	__u64 next_gtid;	/* what runs next unless the program acts */
};

/* The context of a BPF select_rq program. */
struct bpf_ghost_select_rq {
	__u64 gtid;
	__u32 task_cpu;
	__u32 waker_cpu;
	__u32 sd_flag;
	__u32 wake_flags;
	__u8 skip_ttwu_queue;
};

/* The context of a BPF halt-poll program. */
struct bpf_ghost_halt_poll {
	__u32 type;
};

/* The most CPUs a bpf_sync_commit covers. */
#define BPF_SYNC_COMMIT_MAX_CPUS	2

/* Arguments of bpf_sync_commit (-1 in cpus[] for an unused slot). */
struct bpf_sync_commit_args {
	__s32 cpus[BPF_SYNC_COMMIT_MAX_CPUS];
	__u64 gtids[BPF_SYNC_COMMIT_MAX_CPUS];
	__u32 task_barriers[BPF_SYNC_COMMIT_MAX_CPUS];
	__s32 run_flags[BPF_SYNC_COMMIT_MAX_CPUS];
	__s32 commit_flags[BPF_SYNC_COMMIT_MAX_CPUS];
};

/* Flags of bpf_ghost_resched_cpu2. */
#define RESCHED_ANY_CLASS	(1 << 0)	/* whatever runs */
#define RESCHED_GHOST_CLASS	(1 << 1)	/* if a ghost task runs */
#define RESCHED_IDLE_CLASS	(1 << 2)	/* if the idle task runs */
#define RESCHED_OTHER_CLASS	(1 << 3)	/* if neither ghost nor idle runs */
#define SET_MUST_RESCHED	(1 << 4)	/* also set must_resched */
#define WAKE_AGENT		(1 << 5)	/* also wake the agent */
#define GHOST_RESCHED_CPU_MAX	(1 << 6)	/* one past the last flag */

/* Operations of the ghOSt syscall of old ABIs (none in ghost-rs). */
enum ghost_ops {
	GHOST_GTID_LOOKUP,
};

/* "Base" operations of that syscall, immutable across ABIs. */
enum ghost_base_ops {
	_GHOST_BASE_OP_FIRST = 65536,
	GHOST_BASE_GET_GTID = _GHOST_BASE_OP_FIRST,
};

/* GHOST_GTID_LOOKUP kinds. */
enum {
	GHOST_GTID_LOOKUP_TGID,		/* the thread group leader's pid */
};

/*
 * Status words.
 *
 * mmap (read-only) of sw_regions/sw_<id>: a ghost_sw_region_header, then at
 * byte offset "start" an array of "capacity" ghost_status_word. A region is
 * 2 MiB: 64 bytes of header and 65534 status words.
 */

/* Header at offset 0 of a status word region. 64 bytes. */
struct ghost_sw_region_header {
	__u32 version;		/* GHOST_SW_REGION_VERSION */
	__u32 id;		/* region id */
	__u32 numa_node;	/* NUMA node of the region's memory */
	__u32 start;		/* byte offset of the first status word (64) */
	__u32 capacity;		/* number of status words */
	__u32 available;	/* number of free status words */
} __ghost_cacheline_aligned;

/* Per-task (or per-agent) state published by the kernel. 32 bytes. */
struct ghost_status_word {
	__u32 barrier;		/* +1 per message of this task (agent: agent barrier) */
	__u32 flags;		/* GHOST_SW_*; read with acquire order */
	__u64 gtid;		/* owner's gtid */
	__s64 switch_time;	/* ns (ktime) when the task last got on a CPU */
	__u64 runtime;		/* ns of CPU time (sum_exec_runtime) */
} __attribute__((__aligned__(32)));

/* ghost_status_word.flags: common. */
#define GHOST_SW_F_INUSE	(1U << 0)	/* the status word is live */
#define GHOST_SW_F_CANFREE	(1U << 1)	/* owner dead or departed: agent frees it */
#define GHOST_SW_F_ALLOCATED	(1U << 2)	/* the slot is taken */

/* ghost_status_word.flags: agent status words. */
#define GHOST_SW_CPU_AVAIL	(1U << 8)	/* no higher-class work on this CPU */
#define GHOST_SW_BOOST_PRIO	(1U << 9)	/* another class wants the CPU */

/* ghost_status_word.flags: task status words. */
#define GHOST_SW_TASK_ONCPU	(1U << 16)	/* the task is on a CPU */
#define GHOST_SW_TASK_RUNNABLE	(1U << 17)	/* the task is runnable */
#define GHOST_SW_TASK_IS_AGENT	(1U << 18)	/* the owner is an agent */
#define GHOST_SW_TASK_MSG_GATED	(1U << 19)	/* messages gated until freed */

/*
 * Transactions.
 *
 * mmap (read-write) of the enclave's cpu_data file: one ghost_cpu_data page
 * per possible CPU, page i for CPU i. The agent fills a txn, stores state =
 * GHOST_TXN_READY with release order, commits, and waits for state < 0.
 */

/*
 * ghost_txn.state. READY: opened by the agent. 0..nr_cpu_ids-1: claimed by
 * that CPU. Negative: done, with one of the outcomes below.
 */
enum ghost_txn_state {
	GHOST_TXN_COMPLETE = INT_MIN,	/* success */
	GHOST_TXN_ABORTED,		/* the agent aborted it */
	GHOST_TXN_TARGET_ONCPU,		/* the task is on a CPU */
	GHOST_TXN_TARGET_STALE,		/* task barrier, dead or gated */
	GHOST_TXN_TARGET_NOT_FOUND,	/* no such gtid */
	GHOST_TXN_TARGET_NOT_RUNNABLE,	/* the task is not runnable */
	GHOST_TXN_AGENT_STALE,		/* agent barrier, DO_NOT_PREEMPT */
	GHOST_TXN_CPU_OFFLINE,		/* target CPU offline */
	GHOST_TXN_CPU_UNAVAIL,		/* a higher class runs there */
	GHOST_TXN_INVALID_FLAGS,	/* bad run or commit flags */
	GHOST_TXN_INVALID_TARGET,	/* an agent, or not a ghost task */
	GHOST_TXN_NOT_PERMITTED,	/* the caller may not commit it */
	GHOST_TXN_INVALID_CPU,		/* bad target CPU */
	GHOST_TXN_NO_AGENT,		/* the target CPU has no agent */
	GHOST_TXN_UNSUPPORTED_VERSION,	/* bad txn version */
	GHOST_TXN_POISONED,		/* its sync group failed */

	GHOST_TXN_READY = INT_MAX,	/* opened, waiting for a commit */
};

/* The types of ghost_txn.state and ghost_txn.u.sync_group_owner (4 bytes). */
#ifdef __cplusplus
#include <atomic>
typedef std::atomic<ghost_txn_state> _ghost_txn_state_t;
typedef std::atomic<int32_t> _ghost_txn_owner_t;
#else
typedef __s32 _ghost_txn_state_t;
typedef __s32 _ghost_txn_owner_t;
#endif

/* A scheduling transaction for one CPU. 64 bytes. */
struct ghost_txn {
	__s32 version;		/* GHOST_TXN_VERSION */
	__s32 cpu;		/* target CPU (set by the kernel, read-only) */
	_ghost_txn_state_t state;	/* GHOST_TXN_*, or the claiming CPU */
	__u32 agent_barrier;	/* agent barrier the agent last saw */
	__u32 task_barrier;	/* task status word barrier the agent last saw */
	__u16 run_flags;	/* RTLA_ON_* and other run flags */
	__u8 commit_flags;	/* COMMIT_AT_* and other commit flags */
	__u8 unused;		/* padding, 0 */
	__s64 gtid;		/* task to run, or GHOST_*_GTID */
	__s64 commit_time;	/* ns (ktime) when the commit succeeded or failed */
	__u64 cpu_seqnum;	/* the CPU's sequence number at commit */
	union {
		_ghost_txn_owner_t sync_group_owner;	/* owner, or -1 */
	} u;
} __ghost_cacheline_aligned;

/* One page of the cpu_data file. 4096 bytes. */
struct ghost_cpu_data {
	struct ghost_txn txn;
} __ghost_page_aligned;

/* ghost_txn.u.sync_group_owner: not part of a sync group commit. */
#define GHOST_NO_SYNC_GROUP_OWNER	(-1)

/* ghost_txn.commit_flags. 0 = greedy: may commit at any commit point. */
#define COMMIT_AT_SCHEDULE		(1 << 0)	/* when the on-CPU task schedules */
#define COMMIT_AT_TXN_COMMIT		(1 << 1)	/* during GHOST_IOC_COMMIT_TXN itself */
#define ALLOW_TASK_ONCPU		(1 << 2)	/* target may still be on a CPU */
#define ELIDE_AGENT_BARRIER_INC		(1 << 3)	/* do not bump the agent barrier */
#define INC_AGENT_BARRIER_ON_FAILURE	(1 << 4)	/* bump it also on failure */

/* The COMMIT_AT_* flags (at most one may be set). */
#define COMMIT_AT_FLAGS			(COMMIT_AT_SCHEDULE | COMMIT_AT_TXN_COMMIT)

/* ghost_txn.run_flags and ghost_ioc_run.run_flags. RTLA: return to local agent. */
#define RTLA_ON_PREEMPT			(1 << 0)	/* when the task is preempted */
#define RTLA_ON_BLOCKED			(1 << 1)	/* when the task blocks */
#define RTLA_ON_YIELD			(1 << 2)	/* when the task yields */
#define RTLA_ON_IDLE			(1 << 5)	/* when the CPU would go idle */
#define NEED_L1D_FLUSH			(1 << 6)	/* flush L1D before running */
#define NEED_CPU_NOT_IDLE		(1 << 7)	/* MSG_CPU_NOT_IDLE (gtid IDLE only) */
#define ELIDE_PREEMPT			(1 << 9)	/* no TASK_PREEMPT for the displaced task */
#define SEND_TASK_ON_CPU		(1 << 10)	/* MSG_TASK_ON_CPU once it runs */
#define DEFER_LATCHED_PREEMPTION_BY_AGENT (1 << 11)	/* tick preempts, not the agent */
#define DO_NOT_PREEMPT			(1 << 12)	/* fail if a ghost task runs or is latched */

/* Return value of GHOST_IOC_ASSOC_QUEUE (status flags, >= 0). */
#define GHOST_ASSOC_SF_ALREADY		(1 << 0)	/* already on that queue */
#define GHOST_ASSOC_SF_BRAND_NEW	(1 << 1)	/* TASK_NEW not sent yet */

/* struct timerfd_ghost.flags */
#define TIMERFD_GHOST_ENABLED		(1 << 0)	/* send MSG_CPU_TIMER_EXPIRED */

/* Ghost part of GHOST_IOC_TIMERFD_SETTIME. 24 bytes. */
struct timerfd_ghost {
	__s32 cpu;		/* CPU whose agent gets MSG_CPU_TIMER_EXPIRED */
	__s32 flags;		/* TIMERFD_GHOST_* */
	__u64 type;		/* copied to ghost_msg_payload_timer.type */
	__u64 cookie;		/* copied to ghost_msg_payload_timer.cookie */
};

/*
 * ioctl arguments (enclave ctl fd, opened for writing; type letter 'g').
 */

/* GHOST_IOC_SW_GET_INFO: find the status word of a task or agent. 24 bytes. */
struct ghost_ioc_sw_get_info {
	struct ghost_msg_src request;	/* in */
	struct ghost_sw_info response;	/* out */
};

/* GHOST_IOC_CREATE_QUEUE: create a queue; returns its fd. 24 bytes. */
struct ghost_ioc_create_queue {
	__s32 elems;		/* slots: power of two <= GHOST_MAX_QUEUE_ELEMS */
	__s32 node;		/* NUMA node of the ring memory */
	__s32 flags;		/* must be 0 */
	__u64 mapsize;		/* out: bytes to mmap */
};

/* GHOST_IOC_ASSOC_QUEUE: route a task's messages to a queue. 32 bytes. */
struct ghost_ioc_assoc_queue {
	__s32 fd;		/* queue fd */
	struct ghost_msg_src src;	/* must be a GHOST_TASK */
	__u32 barrier;		/* task status word barrier the agent last saw */
	__s32 flags;		/* must be 0 */
};

/* GHOST_IOC_SET_DEFAULT_QUEUE: the enclave's default queue. 4 bytes. */
struct ghost_ioc_set_default_queue {
	__s32 fd;		/* queue fd */
};

/* GHOST_IOC_CONFIG_QUEUE_WAKEUP: set a queue's wakeup CPUs. 24 bytes. */
struct ghost_ioc_config_queue_wakeup {
	__s32 qfd;		/* queue fd */
	struct ghost_agent_wakeup *w;	/* ninfo entries */
	__s32 ninfo;		/* 0..GHOST_MAX_WINFO */
	__s32 flags;		/* must be 0 */
};

/* GHOST_IOC_GET_CPU_TIME: a task's CPU time. 16 bytes. */
struct ghost_ioc_get_cpu_time {
	__s64 gtid;		/* in */
	__u64 runtime;		/* out: ns */
};

/* GHOST_IOC_COMMIT_TXN and GHOST_IOC_SYNC_GROUP_TXN: commit txns. 16 bytes. */
struct ghost_ioc_commit_txn {
#ifdef __KERNEL__
	unsigned long *mask_ptr;	/* a CPU bitmask */
#else
	cpu_set_t *mask_ptr;	/* a CPU bitmask */
#endif
	__u32 mask_len;		/* bytes at mask_ptr */
	__s32 flags;		/* must be 0 */
};

/* GHOST_IOC_TIMERFD_SETTIME: timerfd_settime() with a ghost part. 48 bytes. */
struct ghost_ioc_timerfd_settime {
	__s32 timerfd;		/* timerfd fd */
	__s32 flags;		/* timerfd_settime() flags */
#ifdef __KERNEL__
	struct __kernel_itimerspec *in_tmr;	/* the new setting */
	struct __kernel_itimerspec *out_tmr;	/* the old one, or NULL */
#else
	struct itimerspec *in_tmr;	/* the new setting */
	struct itimerspec *out_tmr;	/* the old one, or NULL */
#endif
	struct timerfd_ghost timerfd_ghost;
};

/* GHOST_IOC_RUN and the ghost_run syscall: yield to or ping an agent. 24 bytes. */
struct ghost_ioc_run {
	__s64 gtid;		/* 0: local yield; GHOST_AGENT_GTID: ping */
	__u32 agent_barrier;	/* agent barrier the agent last saw */
	__u32 task_barrier;	/* task barrier (unused for yield and ping) */
	__s32 run_cpu;		/* CPU of the agent to yield or ping */
	__s32 run_flags;	/* RTLA_ON_IDLE for a local yield, else 0 */
};

/* ioctl numbers on an enclave's ctl fd. */
#define GHOST_IOC_NULL			_IO('g', 0)
#define GHOST_IOC_SW_GET_INFO		_IOWR('g', 1, struct ghost_ioc_sw_get_info)
#define GHOST_IOC_SW_FREE		_IOW('g', 2, struct ghost_sw_info)
#define GHOST_IOC_CREATE_QUEUE		_IOWR('g', 3, struct ghost_ioc_create_queue)
#define GHOST_IOC_ASSOC_QUEUE		_IOW('g', 4, struct ghost_ioc_assoc_queue)
#define GHOST_IOC_SET_DEFAULT_QUEUE	_IOW('g', 5, struct ghost_ioc_set_default_queue)
#define GHOST_IOC_CONFIG_QUEUE_WAKEUP	_IOW('g', 6, struct ghost_ioc_config_queue_wakeup)
#define GHOST_IOC_GET_CPU_TIME		_IOWR('g', 7, struct ghost_ioc_get_cpu_time)
#define GHOST_IOC_COMMIT_TXN		_IOW('g', 8, struct ghost_ioc_commit_txn)
#define GHOST_IOC_SYNC_GROUP_TXN	_IOW('g', 9, struct ghost_ioc_commit_txn)
#define GHOST_IOC_TIMERFD_SETTIME	_IOWR('g', 10, struct ghost_ioc_timerfd_settime)
#define GHOST_IOC_RUN			_IOW('g', 11, struct ghost_ioc_run)

#endif /* _UAPI_LINUX_GHOST_H */
