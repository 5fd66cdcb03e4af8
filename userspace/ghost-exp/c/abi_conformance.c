// SPDX-License-Identifier: GPL-2.0
/*
 * ghost-abi-conformance: what Google ghOSt's userspace library does when it
 * runs an agent, done in plain C against the running kernel, and checked the
 * way that library CHECKs it. It is compiled against ghost-rs's uapi header
 * (linux/ghost.h) and libc only, so it proves the ABI from outside the Rust
 * crates.
 *
 *   ghost-abi-conformance SCENARIO
 *
 * Scenarios (Documentation/ghost-rs/conformance.rst describes each):
 *   agent_start_stop   per-CPU agent startup on every online CPU and the
 *                      library's clean stop
 *   schedule_tasks     a per-CPU FIFO agent schedules threads that join,
 *                      sleep and exit
 *   ping_and_rpc_wake  every way the library wakes an agent that sleeps in
 *                      ghost_run
 *   enclave_files      the bytes and errnos of the enclave files
 *   priority_changed   sched_setattr()/setpriority() of a ghost task
 *   latched_affinity   a committed task whose affinity drops its CPU
 *
 * Like ghOSt's AgentProcess, the scenarios with agents fork: the child is
 * the agent process (it creates the enclave, runs one agent thread per CPU
 * and a CFS thread that serves RPCs), the parent is the control process
 * (the test: it sends RPCs through shared memory and runs the workload).
 *
 * Exit status 0 and a last line "PASS SCENARIO ..." on success; on failure
 * one line "FAIL: [who] step: call: errno/value" (the first failure; the
 * enclave is destroyed and the other process killed) and exit status 1.
 * Every wait ends when nothing progresses for NO_PROGRESS_CAP_S seconds and
 * then names what it waited for.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/ghost.h>

#define GHOSTFS "/sys/fs/ghost"
#define MAX_CPUS 64
#define MAX_TASKS 128
#define NO_PROGRESS_CAP_S 120

/* futex(2) operations (ABI numbers; no kernel header beyond ghost.h). */
#define FUTEX_OP_WAIT 0
#define FUTEX_OP_WAKE 1

/*
 * The ghOSt header types a few ioctl fields as pointers, ours as __u64 user
 * addresses: store the address so that either compiles.
 */
#define SET_UPTR(field, ptr)                                                  \
	do {                                                                  \
		_Static_assert(sizeof(field) == sizeof(uintptr_t),            \
			       #field " must hold a user address");           \
		uintptr_t v__ = (uintptr_t)(ptr);                             \
		memcpy(&(field), &v__, sizeof(v__));                          \
	} while (0)

/* ------------------------------------------------------------------------ */
/* Shared state: the control process and the agent process (MAP_SHARED).    */

/* A one-shot event, as ghOSt's Notification (a futex; works across fork). */
struct notification {
	atomic_int state; /* 0 nobody waits, 1 a waiter, 2 notified */
};

/* What the control process and a test can see of one agent. */
struct agent_view {
	pid_t tid;
	int64_t gtid;
	atomic_ulong wakes;	/* returns from a local yield */
	atomic_ulong idle;	/* local yields started */
	atomic_int in_yield;	/* inside ghost_run now */
	atomic_ulong ticks;	/* CPU_TICK of its own CPU on its own queue */
	atomic_ulong signals;	/* SIGUSR1 handled by this agent thread */
	atomic_ulong msgs;	/* messages consumed from its queue */
	atomic_ulong task_new;	/* TASK_NEW seen on its queue */
	atomic_ulong departed;	/* TASK_DEPARTED seen on its queue */
	atomic_ulong rtla_yields, rtla_returns; /* boosted: RTLA_ON_IDLE yields */
	/* Mailbox: a command the agent carries out when it next wakes. */
	atomic_int cmd_seq, done_seq;
	int cmd, cmd_arg;
	int cmd_ret, cmd_errno;
};

enum { CMD_NONE, CMD_PING_IOCTL, CMD_PING_SYSCALL };

enum rpc_req {
	RPC_WAIT_FOR_IDLE = 1,	/* every agent started a local yield */
	RPC_COUNT_TASKS,	/* tasks the agents still track */
	RPC_PING_AGENTS,	/* the rpc thread pings each agent, waits for it */
	RPC_SW_GET_INFO,	/* GHOST_IOC_SW_GET_INFO(arg0, arg1): errno */
};

struct log_entry {
	int type;
	int value;
	int64_t gtid;
};

struct shared {
	atomic_int fail_claimed;	/* somebody is printing the FAIL line */
	atomic_int failed;		/* ... and has printed it */
	atomic_ulong progress;		/* anything happened */
	atomic_int enclave_id;		/* set by the agent process */
	struct notification agent_ready, kill_agent;
	struct notification rpc_pending, rpc_done;
	int64_t rpc_req, rpc_arg0, rpc_arg1, rpc_res;
	int ncpus;
	struct agent_view agents[MAX_CPUS];
	/* schedule_tasks */
	atomic_ulong n_msg[256];	/* messages by type */
	atomic_ulong assigned[MAX_CPUS];/* new tasks spread to each CPU */
	atomic_ulong ran_on[MAX_CPUS];	/* commits that put a task on a CPU */
	atomic_ulong pings_remote, pings_self, sw_frees, commits_failed;
	atomic_ulong work_done;		/* workload threads that finished */
	/* priority_changed, latched_affinity */
	atomic_int live_tasks;
	int64_t task_gtid;
	atomic_int nlog;
	struct log_entry log[64];
	atomic_ulong remote_commits, latched_preempts;
	/* ping_and_rpc_wake: the probe thread the control moves in and out */
	int64_t probe_gtid;
	atomic_int probe_new_runnable;	/* TASK_NEW's runnable + 1 */
};

static struct shared *S;
static const char *g_scenario = "?";
static bool g_is_control;
static pid_t g_agent_pid;
static bool g_agent_may_exit; /* the control told it to stop */
static __thread char t_who[32] = "main";
static __thread bool t_is_agent;
static __thread int t_agent_idx = -1;
static unsigned long g_local_progress;

static int g_cpus[MAX_CPUS]; /* online CPUs: the enclave's */
static int g_ncpus;
static int g_nr_possible;
static int g_seqnum_bits = 41;

/* ------------------------------------------------------------------------ */
/* Failure, progress, bounded waits.                                        */

static void cleanup_control(void);
static void sleep_us(long us);

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	bool first = S ? atomic_exchange(&S->fail_claimed, 1) == 0 : true;

	if (!first) {
		/* The other process is printing its reason: let it finish
		 * before the cleanup kills it. */
		for (int i = 0; i < 2000 && !atomic_load(&S->failed); i++)
			sleep_us(1000);
	} else {
		char buf[1024];
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		fprintf(stderr, "FAIL: [%s] %s: %s\n", t_who, g_scenario, buf);
		fflush(stderr);
		if (S)
			atomic_store(&S->failed, 1);
	}
	if (g_is_control)
		cleanup_control();
	_exit(1);
}

static void __attribute__((format(printf, 1, 2))) info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("info: %s: ", g_scenario);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

static void progress(void)
{
	if (S)
		atomic_fetch_add(&S->progress, 1);
	else
		g_local_progress++;
}

static unsigned long progress_now(void)
{
	return S ? atomic_load(&S->progress) : g_local_progress;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void cpu_relax(void)
{
	__builtin_ia32_pause();
}

/* The other process's failure: it printed the reason; leave quietly. */
static void check_other_process(void)
{
	if (!S || !atomic_load(&S->failed))
		return;
	if (g_is_control)
		cleanup_control();
	_exit(1);
}

struct waiter {
	unsigned long seen;
	int64_t since;
	unsigned spins;
};

static void waiter_init(struct waiter *w)
{
	w->seen = progress_now();
	w->since = now_ns();
	w->spins = 0;
}

static void agent_process_died(void);

/* One step of a bounded wait: pause a little, then give up if nothing has
 * progressed for NO_PROGRESS_CAP_S seconds. Agents spin; others sleep. */
static void __attribute__((format(printf, 2, 3)))
waiter_tick(struct waiter *w, const char *fmt, ...)
{
	if (t_is_agent) {
		for (int i = 0; i < 200; i++)
			cpu_relax();
		if (++w->spins % 64)
			return;
	} else {
		/* 1 ms at first, then 10 ms: less noise on the CPUs. */
		sleep_us(++w->spins < 100 ? 1000 : 10000);
	}
	check_other_process();
	if (g_is_control)
		agent_process_died();
	unsigned long p = progress_now();
	int64_t t = now_ns();

	if (p != w->seen) {
		w->seen = p;
		w->since = t;
		return;
	}
	if (t - w->since < (int64_t)NO_PROGRESS_CAP_S * 1000000000)
		return;
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fail("timed out (nothing progressed for %d s) waiting for %s",
	     NO_PROGRESS_CAP_S, buf);
}

#define WAIT_FOR(cond, ...)                                                   \
	do {                                                                  \
		struct waiter w__;                                            \
		waiter_init(&w__);                                            \
		while (!(cond))                                               \
			waiter_tick(&w__, __VA_ARGS__);                       \
	} while (0)

static long futex(atomic_int *uaddr, int op, int val, const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static void notify(struct notification *n, const char *what)
{
	int v = atomic_exchange(&n->state, 2);

	if (v == 2)
		fail("Notification::Notify: %s was already notified", what);
	if (v == 1)
		futex(&n->state, FUTEX_OP_WAKE, INT_MAX, NULL);
}

static void reset_notification(struct notification *n)
{
	atomic_store(&n->state, 0);
}

/* Notification::WaitForNotification, bounded unless `forever`. */
static void wait_notification(struct notification *n, bool forever, const char *what)
{
	const struct timespec slice = { 0, 50 * 1000 * 1000 };
	unsigned long seen = progress_now();
	int64_t since = now_ns();

	for (;;) {
		int v = atomic_load(&n->state);

		if (v == 2)
			return;
		if (v == 0 && !atomic_compare_exchange_strong(&n->state, &v, 1))
			continue;
		futex(&n->state, FUTEX_OP_WAIT, 1, &slice);
		check_other_process();
		if (forever)
			continue;
		if (g_is_control)
			agent_process_died();
		if (progress_now() != seen) {
			seen = progress_now();
			since = now_ns();
		} else if (now_ns() - since > (int64_t)NO_PROGRESS_CAP_S * 1000000000) {
			fail("timed out (nothing progressed for %d s) waiting for %s",
			     NO_PROGRESS_CAP_S, what);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Small system helpers.                                                    */

/* "EINVAL" for EINVAL (glibc's strerrorname_np). */
static const char *errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";

	return n ? n : "an unknown errno";
}

static const char *msg_name(int type)
{
	switch (type) {
	case MSG_NOP: return "MSG_NOP";
	case MSG_TASK_DEAD: return "TASK_DEAD";
	case MSG_TASK_BLOCKED: return "TASK_BLOCKED";
	case MSG_TASK_WAKEUP: return "TASK_WAKEUP";
	case MSG_TASK_NEW: return "TASK_NEW";
	case MSG_TASK_PREEMPT: return "TASK_PREEMPT";
	case MSG_TASK_YIELD: return "TASK_YIELD";
	case MSG_TASK_DEPARTED: return "TASK_DEPARTED";
	case MSG_TASK_SWITCHTO: return "TASK_SWITCHTO";
	case MSG_TASK_AFFINITY_CHANGED: return "TASK_AFFINITY_CHANGED";
	case MSG_TASK_ON_CPU: return "TASK_ON_CPU";
	case MSG_TASK_PRIORITY_CHANGED: return "TASK_PRIORITY_CHANGED";
	case MSG_TASK_LATCH_FAILURE: return "TASK_LATCH_FAILURE";
	case MSG_CPU_TICK: return "CPU_TICK";
	case MSG_CPU_TIMER_EXPIRED: return "CPU_TIMER_EXPIRED";
	case MSG_CPU_NOT_IDLE: return "CPU_NOT_IDLE";
	case MSG_CPU_AVAILABLE: return "CPU_AVAILABLE";
	case MSG_CPU_BUSY: return "CPU_BUSY";
	case MSG_CPU_AGENT_BLOCKED: return "CPU_AGENT_BLOCKED";
	case MSG_CPU_AGENT_WAKEUP: return "CPU_AGENT_WAKEUP";
	default: return "unknown";
	}
}

static const char *txn_state_name(int s)
{
	switch (s) {
	case GHOST_TXN_COMPLETE: return "GHOST_TXN_COMPLETE";
	case GHOST_TXN_ABORTED: return "GHOST_TXN_ABORTED";
	case GHOST_TXN_TARGET_ONCPU: return "GHOST_TXN_TARGET_ONCPU";
	case GHOST_TXN_TARGET_STALE: return "GHOST_TXN_TARGET_STALE";
	case GHOST_TXN_TARGET_NOT_FOUND: return "GHOST_TXN_TARGET_NOT_FOUND";
	case GHOST_TXN_TARGET_NOT_RUNNABLE: return "GHOST_TXN_TARGET_NOT_RUNNABLE";
	case GHOST_TXN_AGENT_STALE: return "GHOST_TXN_AGENT_STALE";
	case GHOST_TXN_CPU_OFFLINE: return "GHOST_TXN_CPU_OFFLINE";
	case GHOST_TXN_CPU_UNAVAIL: return "GHOST_TXN_CPU_UNAVAIL";
	case GHOST_TXN_INVALID_FLAGS: return "GHOST_TXN_INVALID_FLAGS";
	case GHOST_TXN_INVALID_TARGET: return "GHOST_TXN_INVALID_TARGET";
	case GHOST_TXN_NOT_PERMITTED: return "GHOST_TXN_NOT_PERMITTED";
	case GHOST_TXN_INVALID_CPU: return "GHOST_TXN_INVALID_CPU";
	case GHOST_TXN_NO_AGENT: return "GHOST_TXN_NO_AGENT";
	case GHOST_TXN_UNSUPPORTED_VERSION: return "GHOST_TXN_UNSUPPORTED_VERSION";
	case GHOST_TXN_POISONED: return "GHOST_TXN_POISONED";
	case GHOST_TXN_READY: return "GHOST_TXN_READY";
	default: return s >= 0 ? "claimed by a CPU" : "unknown";
	}
}

/* Reads a whole small file (at most size - 1 bytes); returns its length. */
static ssize_t read_all_at(int dirfd, const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail("open %s: %s", name, errname(errno));
	size_t n = 0;

	for (;;) {
		ssize_t r = read(fd, buf + n, size - 1 - n);

		if (r < 0)
			fail("read %s: %s", name, errname(errno));
		if (r == 0 || n + (size_t)r >= size - 1) {
			n += (size_t)r;
			break;
		}
		n += (size_t)r;
	}
	buf[n] = 0;
	close(fd);
	return (ssize_t)n;
}

/* Writes `s` with one write(2); returns 0 or the errno. */
static int write_at(int dirfd, const char *name, const char *s)
{
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return errno;
	ssize_t r = write(fd, s, strlen(s));
	int e = r == (ssize_t)strlen(s) ? 0 : r < 0 ? errno : EIO;

	close(fd);
	return e;
}

/* A file's bytes, escaped for a message. */
static const char *quoted(const char *s)
{
	static __thread char buf[160];
	size_t o = 0;

	buf[o++] = '"';
	for (; *s && o < sizeof(buf) - 8; s++) {
		if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else if (isprint((unsigned char)*s)) {
			buf[o++] = *s;
		} else {
			o += (size_t)snprintf(buf + o, 6, "\\x%02x", (unsigned char)*s);
		}
	}
	buf[o++] = '"';
	buf[o] = 0;
	return buf;
}

/* Parses a CPU list ("0-1,3") into cpus[]; returns how many. */
static int parse_cpulist(const char *s, int *cpus, int max)
{
	int n = 0;

	while (*s && *s != '\n') {
		char *end;
		long lo = strtol(s, &end, 10), hi = lo;

		if (end == s)
			fail("bad CPU list %s", quoted(s));
		s = end;
		if (*s == '-') {
			hi = strtol(s + 1, &end, 10);
			s = end;
		}
		for (long c = lo; c <= hi && n < max; c++)
			cpus[n++] = (int)c;
		if (*s == ',')
			s++;
	}
	return n;
}

static void read_topology(void)
{
	char buf[256];

	read_all_at(AT_FDCWD, "/sys/devices/system/cpu/online", buf, sizeof(buf));
	g_ncpus = parse_cpulist(buf, g_cpus, MAX_CPUS);
	if (g_ncpus < 1)
		fail("no online CPU in %s", quoted(buf));
	int possible[MAX_CPUS];
	read_all_at(AT_FDCWD, "/sys/devices/system/cpu/possible", buf, sizeof(buf));
	int np = parse_cpulist(buf, possible, MAX_CPUS);

	g_nr_possible = possible[np - 1] + 1;
	/* Gtid::tid(): the gtid layout from kernel.pid_max_max, as ghOSt's
	 * library derives GHOST_TID_SEQNUM_BITS. */
	read_all_at(AT_FDCWD, "/proc/sys/kernel/pid_max_max", buf, sizeof(buf));
	unsigned long pmm = strtoul(buf, NULL, 10);

	if (pmm < 2)
		fail("/proc/sys/kernel/pid_max_max reads %s", quoted(buf));
	g_seqnum_bits = 63 - (32 - __builtin_clz((unsigned)(pmm - 1)));
}

static pid_t tid_of_gtid(int64_t gtid)
{
	return (pid_t)(gtid >> g_seqnum_bits);
}

/* Gtid::Current(): /proc/<tid>/ghost/gtid. */
static int64_t read_gtid(pid_t tid)
{
	char path[64], buf[64];

	snprintf(path, sizeof(path), "/proc/%d/ghost/gtid", tid);
	read_all_at(AT_FDCWD, path, buf, sizeof(buf));
	char *end;
	long long g = strtoll(buf, &end, 10);

	if (end == buf || g <= 0)
		fail("%s reads %s", path, quoted(buf));
	if (tid_of_gtid(g) != tid)
		fail("%s is %lld, whose tid (gtid >> %d) is %d, not %d", path, g,
		     g_seqnum_bits, tid_of_gtid(g), tid);
	return g;
}

static char thread_state(pid_t tid)
{
	char path[64], buf[512];

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return '?';
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	char *p = strrchr(buf, ')');

	return p && p[1] == ' ' ? p[2] : '?';
}

static void pin_to(pid_t tid, const int *cpus, int n, const char *why)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int i = 0; i < n; i++)
		CPU_SET(cpus[i], &set);
	if (sched_setaffinity(tid, sizeof(set), &set) != 0)
		fail("%s: sched_setaffinity(%d): %s", why, tid, errname(errno));
}

/* ------------------------------------------------------------------------ */
/* LocalEnclave.                                                            */

struct enclave {
	int id;
	int ctl_fd;	/* enclave_N/ctl, O_RDWR: the library's global ctl fd */
	int dir_fd;	/* enclave_N, O_PATH */
	int online_fd;	/* agent_online, O_RDWR while advertised online */
	struct ghost_cpu_data *cpu_data;
	size_t cpu_data_size;
	int swr_fd;
	struct ghost_sw_region_header *swr;
	size_t swr_size;
	struct ghost_status_word *sw_table;
};

static struct enclave E = { .id = -1, .ctl_fd = -1, .dir_fd = -1, .online_fd = -1 };

static void cleanup_control(void)
{
	int id = S ? atomic_load(&S->enclave_id) : E.id;
	struct sched_param sp = { 0 };

	/* A workload thread failed: out of ghost first, then destroy (the
	 * caller does not rely on how destroy treats its own caller). */
	if (sched_getscheduler(0) == SCHED_GHOST)
		sched_setscheduler(0, SCHED_OTHER, &sp);
	if (id > 0) {
		char path[96];

		snprintf(path, sizeof(path), GHOSTFS "/enclave_%d/ctl", id);
		int fd = open(path, O_WRONLY | O_CLOEXEC);

		if (fd >= 0) {
			if (write(fd, "destroy", 7) < 0) {
				/* Gone already. */
			}
			close(fd);
		}
	}
	if (g_agent_pid > 0) {
		kill(g_agent_pid, SIGKILL);
		for (int i = 0; i < 10000; i++) {
			if (waitpid(g_agent_pid, NULL, WNOHANG) != 0)
				break;
			sleep_us(1000);
		}
		g_agent_pid = 0;
	}
}

/* In the control process: the agent process ended while we waited. */
static void agent_process_died(void)
{
	int st;

	if (g_agent_pid <= 0 || g_agent_may_exit ||
	    waitpid(g_agent_pid, &st, WNOHANG) != g_agent_pid)
		return;
	g_agent_pid = 0;
	check_other_process();
	if (WIFSIGNALED(st))
		fail("the agent process was killed by signal %d", WTERMSIG(st));
	fail("the agent process exited with status %d before the test ended",
	     WEXITSTATUS(st));
}

/* Ghost::CheckVersion: ghostfs mounted (EBUSY: already), 91 listed. */
static void check_version(void)
{
	struct stat st;

	if (stat(GHOSTFS "/version", &st) != 0) {
		if (mount("ghost", GHOSTFS, "ghost", 0, NULL) != 0 && errno != EBUSY)
			fail("mount ghost on " GHOSTFS ": %s", errname(errno));
	}
	char buf[256];

	read_all_at(AT_FDCWD, GHOSTFS "/version", buf, sizeof(buf));
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (strcmp(line, "91") == 0)
			return;
	fail("CheckVersion: " GHOSTFS "/version does not list %d", GHOST_VERSION);
}

/* LocalEnclave::MakeNextEnclave: "create <id> 91", the next id on EEXIST. */
static int make_next_enclave(int *id_out)
{
	int top = open(GHOSTFS "/ctl", O_WRONLY | O_CLOEXEC);

	if (top < 0)
		fail("MakeNextEnclave: open " GHOSTFS "/ctl: %s", errname(errno));
	int id = 1;

	for (;; id++) {
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "create %d %d", id, GHOST_VERSION);
		if (write(top, cmd, strlen(cmd)) == (ssize_t)strlen(cmd))
			break;
		if (errno != EEXIST)
			fail("MakeNextEnclave: write \"%s\" to " GHOSTFS "/ctl: %s",
			     cmd, errname(errno));
	}
	close(top);
	char path[96];

	snprintf(path, sizeof(path), GHOSTFS "/enclave_%d/ctl", id);
	int ctl = open(path, O_RDWR | O_CLOEXEC);

	if (ctl < 0)
		fail("MakeNextEnclave: open %s O_RDWR: %s", path, errname(errno));
	*id_out = id;
	return ctl;
}

/* LocalEnclave::GetEnclaveDirectory: the id read back from ctl. */
static int enclave_directory(int ctl_fd, int expect_id)
{
	char buf[32] = { 0 };

	lseek(ctl_fd, 0, SEEK_SET);
	ssize_t n = read(ctl_fd, buf, sizeof(buf) - 1);

	if (n <= 0)
		fail("GetEnclaveDirectory: read ctl: %s", n < 0 ? errname(errno) : "EOF");
	char *end;
	long id = strtol(buf, &end, 10);

	/* absl::SimpleAtoi allows surrounding whitespace. */
	while (isspace((unsigned char)*end))
		end++;
	if (*end || id != expect_id)
		fail("GetEnclaveDirectory: ctl reads %s, want the id %d", quoted(buf),
		     expect_id);
	char path[96];

	snprintf(path, sizeof(path), GHOSTFS "/enclave_%ld", id);
	int dir = open(path, O_PATH | O_CLOEXEC);

	if (dir < 0)
		fail("GetEnclaveDirectory: open %s O_PATH: %s", path, errname(errno));
	return dir;
}

static size_t file_size(int fd, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		fail("GetFileSize(%s): fstat: %s", what, errname(errno));
	return (size_t)st.st_size;
}

/* LocalStatusWordTable(dir, 0, node). */
static void status_word_table(int node)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "create sw_region 0 %d", node);
	int e = write_at(E.dir_fd, "ctl", cmd);

	if (e && e != EEXIST)
		fail("LocalStatusWordTable: write \"%s\" to ctl: %s", cmd, errname(e));
	E.swr_fd = openat(E.dir_fd, "sw_regions/sw_0", O_RDONLY | O_CLOEXEC);
	if (E.swr_fd < 0)
		fail("LocalStatusWordTable: open sw_regions/sw_0: %s", errname(errno));
	E.swr_size = file_size(E.swr_fd, "sw_regions/sw_0");
	E.swr = mmap(NULL, E.swr_size, PROT_READ, MAP_SHARED, E.swr_fd, 0);
	if (E.swr == MAP_FAILED)
		fail("LocalStatusWordTable: mmap sw_0 (%zu bytes, PROT_READ): %s",
		     E.swr_size, errname(errno));
	if (E.swr->capacity == 0 || E.swr->id != 0 || (int)E.swr->numa_node != node)
		fail("LocalStatusWordTable: header capacity %u id %u numa_node %u",
		     E.swr->capacity, E.swr->id, E.swr->numa_node);
	if (E.swr->start < sizeof(*E.swr) ||
	    E.swr->start + (size_t)E.swr->capacity * sizeof(struct ghost_status_word) >
		    E.swr_size)
		fail("LocalStatusWordTable: start %u capacity %u do not fit %zu bytes",
		     E.swr->start, E.swr->capacity, E.swr_size);
	E.sw_table = (struct ghost_status_word *)((char *)E.swr + E.swr->start);
}

/* LocalEnclave::CommonInit. */
static void enclave_common_init(void)
{
	char buf[64];

	read_all_at(E.dir_fd, "abi_version", buf, sizeof(buf));
	if (atoi(buf) != GHOST_VERSION)
		fail("CommonInit: CHECK_EQ(GetAbiVersion(), %d): abi_version reads %s",
		     GHOST_VERSION, quoted(buf));
	/* The bytes ghOSt's kernel prints: "%u\n". */
	if (strcmp(buf, "91\n") != 0)
		fail("abi_version reads %s, ghOSt prints \"91\\n\"", quoted(buf));
	int fd = openat(E.dir_fd, "cpu_data", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail("CommonInit: open cpu_data O_RDWR: %s", errname(errno));
	E.cpu_data_size = file_size(fd, "cpu_data");
	if (E.cpu_data_size != (size_t)g_nr_possible * 4096)
		fail("CommonInit: cpu_data is %zu bytes, want 4096 per possible CPU (%d)",
		     E.cpu_data_size, g_nr_possible);
	E.cpu_data = mmap(NULL, E.cpu_data_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			  fd, 0);
	if (E.cpu_data == MAP_FAILED)
		fail("CommonInit: mmap cpu_data (%zu bytes, RW, MAP_SHARED): %s",
		     E.cpu_data_size, errname(errno));
	close(fd);
	status_word_table(0);
}

/* CpuList::CpuMaskStr: hex, a comma between 32-bit groups. */
static void cpumask_str(const int *cpus, int n, char *out, size_t size)
{
	int top = 0;

	for (int i = 0; i < n; i++)
		if (cpus[i] > top)
			top = cpus[i];
	int groups = top / 32 + 1;
	size_t o = 0;

	for (int g = groups - 1; g >= 0; g--) {
		uint32_t w = 0;

		for (int i = 0; i < n; i++)
			if (cpus[i] / 32 == g)
				w |= 1u << (cpus[i] % 32);
		o += (size_t)snprintf(out + o, size - o, g == groups - 1 ? "%x" : ",%08x", w);
	}
}

/* LocalEnclave::CreateAndAttachToEnclave + BuildCpuReps. */
static void enclave_create(void)
{
	E.ctl_fd = make_next_enclave(&E.id);
	if (S)
		atomic_store(&S->enclave_id, E.id);
	E.dir_fd = enclave_directory(E.ctl_fd, E.id);
	enclave_common_init();

	char mask[64];

	cpumask_str(g_cpus, g_ncpus, mask, sizeof(mask));
	int fd = openat(E.dir_fd, "cpumask", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail("CreateAndAttachToEnclave: open cpumask: %s", errname(errno));
	int retries = 0;

	for (;; retries++) {
		ssize_t r = write(fd, mask, strlen(mask));

		if (r == (ssize_t)strlen(mask))
			break;
		/* The library retries EBUSY 10 times, 50 ms apart (a destroy of
		 * an earlier enclave is still releasing the CPUs). */
		if (r != -1 || errno != EBUSY || retries >= 10)
			fail("CreateAndAttachToEnclave: write \"%s\" to cpumask: %s", mask,
			     r < 0 ? errname(errno) : "short write");
		sleep_us(50000);
	}
	close(fd);
	/* BuildCpuReps: every enclave CPU's txn, as the kernel set it up. */
	for (int i = 0; i < g_ncpus; i++) {
		struct ghost_txn *t = &E.cpu_data[g_cpus[i]].txn;

		if (t->cpu != g_cpus[i] || t->version != GHOST_TXN_VERSION ||
		    __atomic_load_n(&t->state, __ATOMIC_ACQUIRE) != GHOST_TXN_COMPLETE ||
		    t->u.sync_group_owner != GHOST_NO_SYNC_GROUP_OWNER)
			fail("BuildCpuReps: txn of CPU %d: cpu %d version %d state %s "
			     "sync_group_owner %d",
			     g_cpus[i], t->cpu, t->version, txn_state_name(t->state),
			     t->u.sync_group_owner);
	}
	progress();
}

/* LocalEnclave::~LocalEnclave. */
static void enclave_close(void)
{
	munmap(E.cpu_data, E.cpu_data_size);
	if (write(E.ctl_fd, "destroy", 7) != 7)
		fail("~LocalEnclave: write \"destroy\" to ctl: %s", errname(errno));
	close(E.ctl_fd);
	close(E.dir_fd);
	munmap(E.swr, E.swr_size);
	close(E.swr_fd);
}

static void write_tunable(const char *name, const char *value)
{
	int e = write_at(E.dir_fd, name, value);

	if (e)
		fail("WriteEnclaveTunable(%s, \"%s\"): %s", name, value, errname(e));
}

/* ------------------------------------------------------------------------ */
/* Status words, queues (Channel), txns (RunRequest), ghost_run.            */

static uint32_t sw_barrier(const struct ghost_status_word *sw)
{
	return __atomic_load_n(&sw->barrier, __ATOMIC_ACQUIRE);
}

static uint32_t sw_flags(const struct ghost_status_word *sw)
{
	return __atomic_load_n(&sw->flags, __ATOMIC_ACQUIRE);
}

static struct ghost_status_word *status_word(struct ghost_sw_info info, const char *who)
{
	if (info.id != E.swr->id || info.index >= E.swr->capacity)
		fail("%s: status word {id %u, index %u} is not in region %u (capacity %u)",
		     who, info.id, info.index, E.swr->id, E.swr->capacity);
	return &E.sw_table[info.index];
}

/* LocalStatusWord::Free: CHECK(can_free()), then SW_FREE must return 0. */
static void status_word_free(struct ghost_sw_info info, const char *whose)
{
	struct ghost_status_word *sw = status_word(info, whose);
	uint32_t f = sw_flags(sw);

	if (!(f & GHOST_SW_F_CANFREE))
		fail("LocalStatusWord::Free of %s: CHECK(can_free()) failed: flags %#x", whose, f);
	if (ioctl(E.ctl_fd, GHOST_IOC_SW_FREE, &info) != 0)
		fail("LocalStatusWord::Free of %s: GHOST_IOC_SW_FREE {id %u, index %u}: %s",
		     whose, info.id, info.index, errname(errno));
	if (S)
		atomic_fetch_add(&S->sw_frees, 1);
}

struct channel {
	int fd;
	struct ghost_queue_header *hdr;
	size_t map_size;
	uint32_t nelems;
	struct ghost_ring *ring;
};

/* A message copied out of the ring (its u64 fields are only 4-aligned). */
struct message {
	struct ghost_msg hdr;
	union {
		uint64_t align;
		unsigned char bytes[128];
	} payload;
	uint32_t slots;
};

/* Channel::Channel: CREATE_QUEUE, mmap, CONFIG_QUEUE_WAKEUP. */
static void channel_create(struct channel *c, int elems, int node, int wake_cpu)
{
	struct ghost_ioc_create_queue q = { .elems = elems, .node = node, .flags = 0 };

	c->fd = ioctl(E.ctl_fd, GHOST_IOC_CREATE_QUEUE, &q);
	if (c->fd <= 0)
		fail("Channel: GHOST_IOC_CREATE_QUEUE {elems %d, node %d}: %s", elems, node,
		     errname(errno));
	c->map_size = q.mapsize;
	c->hdr = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->hdr == MAP_FAILED)
		fail("Channel: mmap queue (%zu bytes): %s", c->map_size, errname(errno));
	c->nelems = c->hdr->nelems;
	if (c->hdr->version != GHOST_QUEUE_VERSION || c->nelems == 0 ||
	    (c->nelems & (c->nelems - 1)) ||
	    c->hdr->start + sizeof(struct ghost_ring) + (size_t)c->nelems * 8 > c->map_size)
		fail("Channel: queue header version %u start %u nelems %u in %zu bytes",
		     c->hdr->version, c->hdr->start, c->nelems, c->map_size);
	c->ring = (struct ghost_ring *)((char *)c->hdr + c->hdr->start);
	if (wake_cpu >= 0) {
		struct ghost_agent_wakeup w = { .cpu = wake_cpu, .prio = 0 };
		struct ghost_ioc_config_queue_wakeup cw = { .qfd = c->fd, .ninfo = 1, .flags = 0 };

		SET_UPTR(cw.w, &w);
		if (ioctl(E.ctl_fd, GHOST_IOC_CONFIG_QUEUE_WAKEUP, &cw) != 0)
			fail("Channel: GHOST_IOC_CONFIG_QUEUE_WAKEUP {cpu %d}: %s", wake_cpu,
			     errname(errno));
	}
}

/* Channel::Peek: copies the next message out; false if the ring is empty. */
static bool channel_peek(struct channel *c, struct message *m)
{
	uint32_t tail = __atomic_load_n(&c->ring->tail, __ATOMIC_ACQUIRE);
	uint32_t head = __atomic_load_n(&c->ring->head, __ATOMIC_ACQUIRE);

	if (tail == head)
		return false;
	uint32_t overflow = __atomic_load_n(&c->ring->overflow, __ATOMIC_ACQUIRE);

	if (overflow != 0)
		fail("Channel::Peek: CHECK_EQ(overflow, 0): the ring overflowed %u times", overflow);
	const char *slot = (const char *)&c->ring->msgs[tail & (c->nelems - 1)];

	memcpy(&m->hdr, slot, sizeof(m->hdr));
	if (m->hdr.length < sizeof(struct ghost_msg))
		fail("Channel::Peek: message type %u with length %u at tail %u", m->hdr.type,
		     m->hdr.length, tail);
	size_t plen = m->hdr.length - sizeof(struct ghost_msg);

	if (plen > sizeof(m->payload))
		plen = sizeof(m->payload);
	memset(&m->payload, 0, sizeof(m->payload));
	if (m->hdr.type != MSG_NOP)
		memcpy(m->payload.bytes, slot + sizeof(struct ghost_msg), plen);
	m->slots = (m->hdr.length + 7u) / 8u;
	return true;
}

/* Channel::Consume. */
static void channel_consume(struct channel *c, const struct message *m)
{
	uint32_t tail = __atomic_load_n(&c->ring->tail, __ATOMIC_ACQUIRE);

	__atomic_store_n(&c->ring->tail, tail + m->slots, __ATOMIC_RELEASE);
}

/* Copies the payload into `var` (ring payloads are only 4-aligned). */
#define PAYLOAD(var, m) memcpy(&(var), (m)->payload.bytes, sizeof(var))

static int64_t msg_gtid(const struct message *m)
{
	int64_t g;

	memcpy(&g, m->payload.bytes, sizeof(g));
	return g;
}

static int msg_cpu(const struct message *m)
{
	int c;

	memcpy(&c, m->payload.bytes, sizeof(c));
	return c;
}

static bool is_task_msg(int type)
{
	return type >= _MSG_TASK_FIRST && type <= _MSG_TASK_LAST;
}

static bool is_cpu_msg(int type)
{
	return type >= _MSG_CPU_FIRST && type <= _MSG_CPU_LAST;
}

/* Channel::AssociateTask: 0 (status in *status) or the errno. */
static int channel_associate(struct channel *c, int64_t gtid, uint32_t barrier, int *status)
{
	struct ghost_ioc_assoc_queue a = {
		.fd = c->fd,
		.src = { .type = GHOST_TASK, .arg = (uint64_t)gtid },
		.barrier = barrier,
		.flags = 0,
	};
	int r = ioctl(E.ctl_fd, GHOST_IOC_ASSOC_QUEUE, &a);

	if (r < 0)
		return errno;
	if (status)
		*status = r;
	return 0;
}

/* Channel::SetEnclaveDefault. */
static void channel_set_default(struct channel *c)
{
	struct ghost_ioc_set_default_queue d = { .fd = c->fd };

	if (ioctl(E.ctl_fd, GHOST_IOC_SET_DEFAULT_QUEUE, &d) != 0)
		fail("Channel::SetEnclaveDefault: GHOST_IOC_SET_DEFAULT_QUEUE: %s",
		     errname(errno));
}

/* Ghost::Run through GHOST_IOC_RUN on `ctl`, or the ghost_run system call. */
static int ghost_run_fd(int ctl, bool via_syscall, int64_t gtid, uint32_t agent_barrier,
			int run_cpu, int flags)
{
	if (via_syscall)
		return (int)syscall(__NR_ghost_run, (long)gtid, (unsigned long)agent_barrier,
				    0UL, (long)run_cpu, (long)flags);
	struct ghost_ioc_run r = {
		.gtid = gtid,
		.agent_barrier = agent_barrier,
		.task_barrier = 0,
		.run_cpu = run_cpu,
		.run_flags = flags,
	};
	return ioctl(ctl, GHOST_IOC_RUN, &r);
}

static int ghost_run_call(bool via_syscall, int64_t gtid, uint32_t agent_barrier, int run_cpu,
			  int flags)
{
	return ghost_run_fd(E.ctl_fd, via_syscall, gtid, agent_barrier, run_cpu, flags);
}

/* LocalEnclave::PingRunRequest: 0 or the errno. */
static int ping(int cpu, bool via_syscall)
{
	return ghost_run_call(via_syscall, GHOST_AGENT_GTID, 0, cpu, 0) == 0 ? 0 : errno;
}

static struct ghost_txn *txn_of(int cpu)
{
	return &E.cpu_data[cpu].txn;
}

static int txn_state(const struct ghost_txn *t)
{
	return __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
}

/* LocalRunRequest::Open. */
static void txn_open(int cpu, int64_t gtid, uint32_t task_barrier, uint32_t agent_barrier,
		     int run_flags, int commit_flags)
{
	struct ghost_txn *t = txn_of(cpu);

	if (txn_state(t) >= 0)
		fail("RunRequest::Open on CPU %d: CHECK(committed()): state %s", cpu,
		     txn_state_name(txn_state(t)));
	if (__atomic_load_n(&t->u.sync_group_owner, __ATOMIC_ACQUIRE) !=
	    GHOST_NO_SYNC_GROUP_OWNER)
		fail("RunRequest::Open on CPU %d: CHECK(!sync_group_owned()): owner %d", cpu,
		     t->u.sync_group_owner);
	t->agent_barrier = agent_barrier;
	t->gtid = gtid;
	t->task_barrier = task_barrier;
	t->run_flags = (uint16_t)run_flags;
	t->commit_flags = (uint8_t)commit_flags;
	__atomic_store_n(&t->state, GHOST_TXN_READY, __ATOMIC_RELEASE);
}

/*
 * LocalEnclave::CommitRunRequest: Submit (COMMIT_TXN, must return 0), then
 * CompleteRunRequest: true on COMPLETE, false on the failures the library
 * expects, a failure on any other state.
 */
static bool txn_commit(int cpu)
{
	struct ghost_txn *t = txn_of(cpu);

	if (txn_state(t) == GHOST_TXN_READY) {
		cpu_set_t set;
		struct ghost_ioc_commit_txn c = { .mask_len = sizeof(set), .flags = 0 };

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		SET_UPTR(c.mask_ptr, &set);
		if (ioctl(E.ctl_fd, GHOST_IOC_COMMIT_TXN, &c) != 0)
			fail("SubmitRunRequest: CHECK_EQ(Commit(CPU %d), 0): GHOST_IOC_COMMIT_TXN: %s",
			     cpu, errname(errno));
	}
	WAIT_FOR(txn_state(t) < 0, "the txn of CPU %d to complete (state %s)", cpu,
		 txn_state_name(txn_state(t)));
	int s = txn_state(t);

	switch (s) {
	case GHOST_TXN_COMPLETE:
		return true;
	case GHOST_TXN_TARGET_NOT_FOUND:
	case GHOST_TXN_TARGET_STALE:
	case GHOST_TXN_AGENT_STALE:
	case GHOST_TXN_CPU_UNAVAIL:
	case GHOST_TXN_POISONED:
	case GHOST_TXN_ABORTED:
		if (S)
			atomic_fetch_add(&S->commits_failed, 1);
		return false;
	case GHOST_TXN_NO_AGENT:
		if (E.online_fd >= 0)
			fail("CompleteRunRequest on CPU %d: TXN failed with NO_AGENT, but we are "
			     "still online", cpu);
		return false;
	default:
		fail("CompleteRunRequest on CPU %d (gtid %" PRId64 "): unexpected state after "
		     "commit: %s",
		     cpu, (int64_t)t->gtid, txn_state_name(s));
	}
}

/* ------------------------------------------------------------------------ */
/* Agents (lib/agent.cc, LocalAgent).                                       */

struct agent;

/* What a scenario plugs into the common agent process. */
struct scenario {
	const char *name;
	void (*agent_loop)(struct agent *a);	/* AgentThread() */
	void (*after_ready)(void);		/* agent process, after Ready() */
	int64_t (*rpc)(int64_t req, int64_t a0, int64_t a1);
	void (*control)(void);			/* the test, in the control process */
	bool deliver_ticks;			/* CPU_TICK check of agent_start_stop */
};

static const struct scenario *SC;

struct agent {
	int idx, cpu;
	pthread_t thread;
	struct channel chan;	/* its own queue, woken on its CPU */
	struct ghost_sw_info sw_info;
	struct ghost_status_word *sw;
	int64_t gtid;
	pid_t tid;
	bool yield_via_syscall;
	struct notification ready, enclave_ready, do_exit;
	atomic_int finished, exited;
	struct agent_view *view;
};

static struct agent g_agents[MAX_CPUS];
static struct channel *g_default_chan; /* the first CPU's queue */

static struct agent_view *view_of(int idx)
{
	return &S->agents[idx];
}

static bool finished(struct agent *a)
{
	return atomic_load(&a->finished);
}

/* The agent's SW barrier and whether another class wants its CPU. */
static uint32_t agent_barrier(struct agent *a)
{
	return sw_barrier(a->sw);
}

static bool boosted(struct agent *a)
{
	return sw_flags(a->sw) & GHOST_SW_BOOST_PRIO;
}

/*
 * LocalEnclave::LocalYieldRunRequest: ghost_run(gtid 0, own CPU, the agent
 * barrier); the library CHECKs that a failure is ESTALE or ENODEV.
 */
static void local_yield(struct agent *a, uint32_t barrier, int flags)
{
	struct agent_view *v = a->view;

	if (sched_getcpu() != a->cpu)
		fail("LocalYield: DCHECK_EQ(sched_getcpu(), %d): on CPU %d", a->cpu, sched_getcpu());
	atomic_fetch_add(&v->idle, 1);
	atomic_store(&v->in_yield, 1);
	int r = ghost_run_call(a->yield_via_syscall, 0, barrier, a->cpu, flags);
	int e = errno;

	atomic_store(&v->in_yield, 0);
	if (r != 0 && e != ESTALE && e != ENODEV)
		fail("LocalYield: %s(gtid 0, agent_barrier %u, run_cpu %d, run_flags %#x) "
		     "returned %d errno %s; the library CHECKs errno == ESTALE || errno == ENODEV",
		     a->yield_via_syscall ? "ghost_run syscall" : "GHOST_IOC_RUN", barrier, a->cpu,
		     flags, r, errname(e));
	atomic_fetch_add(&v->wakes, 1);
	progress();
}

/* Carries out a command the control process left in the agent's mailbox. */
static void run_mailbox(struct agent *a)
{
	struct agent_view *v = a->view;
	int seq = atomic_load(&v->cmd_seq);

	if (seq == atomic_load(&v->done_seq))
		return;
	int r = 0, e = 0;

	switch (v->cmd) {
	case CMD_PING_IOCTL:
	case CMD_PING_SYSCALL:
		r = ghost_run_call(v->cmd == CMD_PING_SYSCALL, GHOST_AGENT_GTID, 0, v->cmd_arg, 0);
		e = r ? errno : 0;
		break;
	default:
		break;
	}
	v->cmd_ret = r;
	v->cmd_errno = e;
	atomic_store(&v->done_seq, seq);
	progress();
}

/* Agent::ThreadBody. */
static void *agent_thread(void *arg)
{
	struct agent *a = arg;
	struct agent_view *v = a->view;

	snprintf(t_who, sizeof(t_who), "agent %d", a->cpu);
	t_agent_idx = a->idx;
	a->tid = gettid();
	a->gtid = read_gtid(a->tid);
	v->tid = a->tid;
	v->gtid = a->gtid;
	pin_to(0, &a->cpu, 1, "Agent::ThreadBody");

	/* LocalEnclave::WaitForOldAgent: agent_online must read 0 (epoll
	 * EPOLLIN|EPOLLET|EPOLLPRI; the first epoll_wait returns at once). */
	int ofd = openat(E.dir_fd, "agent_online", O_RDONLY | O_CLOEXEC);

	if (ofd < 0)
		fail("WaitForOldAgent: open agent_online: %s", errname(errno));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET | EPOLLPRI };

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ofd, &ev) != 0)
		fail("WaitForOldAgent: epoll_ctl(agent_online): %s", errname(errno));
	struct waiter w;

	waiter_init(&w);
	for (;;) {
		int r = epoll_wait(ep, &ev, 1, 10);

		if (r == 1)
			break;
		if (r < 0 && errno != EINTR)
			fail("WaitForOldAgent: epoll_wait(agent_online): %s", errname(errno));
		waiter_tick(&w, "WaitForOldAgent: the first epoll_wait on agent_online to return");
	}
	char buf[16] = { 0 };

	if (read(ofd, buf, sizeof(buf) - 1) <= 0)
		fail("WaitForOldAgent: read agent_online: %s", errname(errno));
	if (atoi(buf) != 0)
		fail("WaitForOldAgent: a new enclave's agent_online reads %s", quoted(buf));
	close(ep);
	close(ofd);

	/* SchedAgentEnterGhost, retried while EBUSY (an old agent leaving). */
	int qfd = g_default_chan->fd;
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "become agent %d %d", a->cpu, qfd);
	for (;;) {
		errno = 0;
		if (write(E.ctl_fd, cmd, strlen(cmd)) == (ssize_t)strlen(cmd))
			break;
		if (errno != EBUSY)
			fail("SchedAgentEnterGhost: write \"%s\" to ctl: %s", cmd, errname(errno));
		progress();
		sched_yield();
	}
	int pol = sched_getscheduler(0);

	if (pol != (SCHED_GHOST | SCHED_RESET_ON_FORK))
		fail("SchedAgentEnterGhost: CHECK_EQ(sched_getscheduler(0), SCHED_GHOST | "
		     "SCHED_RESET_ON_FORK): %#x",
		     pol);
	cpu_set_t set;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) != 1 ||
	    !CPU_ISSET(a->cpu, &set))
		fail("SchedAgentEnterGhost: the agent's affinity is not {%d} (%d CPUs)", a->cpu,
		     CPU_COUNT(&set));
	if (sched_getcpu() != a->cpu)
		fail("SchedAgentEnterGhost: CHECK_EQ(sched_getcpu(), %d): %d", a->cpu,
		     sched_getcpu());
	t_is_agent = true;

	/* StatusWord(AgentSW): SW_GET_INFO(GHOST_AGENT, sched_getcpu()). */
	struct ghost_ioc_sw_get_info gi = {
		.request = { .type = GHOST_AGENT, .arg = (uint64_t)sched_getcpu() },
	};
	if (ioctl(E.ctl_fd, GHOST_IOC_SW_GET_INFO, &gi) != 0)
		fail("LocalStatusWord(AgentSW): GHOST_IOC_SW_GET_INFO(GHOST_AGENT, %d): %s",
		     a->cpu, errname(errno));
	a->sw_info = gi.response;
	a->sw = status_word(a->sw_info, "the agent's status word");
	uint32_t f = sw_flags(a->sw);

	if ((f & (GHOST_SW_F_INUSE | GHOST_SW_TASK_IS_AGENT)) !=
		    (GHOST_SW_F_INUSE | GHOST_SW_TASK_IS_AGENT) ||
	    (int64_t)a->sw->gtid != a->gtid)
		fail("the agent's status word {%u, %u}: flags %#x (want INUSE|IS_AGENT), gtid "
		     "%" PRIu64 " (want %" PRId64 ")",
		     a->sw_info.id, a->sw_info.index, f, (uint64_t)a->sw->gtid, a->gtid);
	progress();

	SC->agent_loop(a);

	/* Agent::WaitForExitNotification. */
	if (!finished(a))
		fail("WaitForExitNotification: CHECK(Finished())");
	wait_notification(&a->do_exit, false, "the agent's exit notification");
	atomic_store(&a->exited, 1);
	progress();
	return NULL;
}

/* The start of every AgentThread(): SignalReady, WaitForEnclaveReady. */
static void agent_thread_start(struct agent *a)
{
	notify(&a->ready, "ready");
	wait_notification(&a->enclave_ready, false, "Enclave::Ready() to release the agent");
}

/* FullAgent::StartAgentTasks. */
static void start_agents(void)
{
	for (int i = 0; i < g_ncpus; i++) {
		struct agent *a = &g_agents[i];

		a->idx = i;
		a->cpu = g_cpus[i];
		a->view = view_of(i);
		int e = pthread_create(&a->thread, NULL, agent_thread, a);

		if (e)
			fail("StartAgentTasks: pthread_create: %s", errname(e));
	}
	for (int i = 0; i < g_ncpus; i++)
		wait_notification(&g_agents[i].ready, false, "an agent thread to become the agent");
}

/*
 * BasicDispatchScheduler::DiscoverTasks: every in-use, non-agent status
 * word is a task of an earlier agent. A new enclave has none.
 */
static void discover_tasks(void)
{
	for (uint32_t i = 0; i < E.swr->capacity; i++) {
		const struct ghost_status_word *sw = &E.sw_table[i];
		uint32_t f = sw_flags(sw);

		if (!(f & GHOST_SW_F_INUSE) || (f & GHOST_SW_TASK_IS_AGENT))
			continue;
		fail("DiscoverTasks: a new enclave has a task status word at index %u (flags %#x, "
		     "gtid %" PRIu64 ")",
		     i, f, (uint64_t)sw->gtid);
	}
}

/* Enclave::Ready, with FifoScheduler::EnclaveReady. */
static void enclave_ready(void)
{
	channel_set_default(g_default_chan);
	if (write(E.ctl_fd, "disable my bpf_prog_load", 24) != 24)
		fail("DisableMyBpfProgLoad: write to ctl: %s", errname(errno));
	discover_tasks();
	if (write(E.ctl_fd, "discover tasks", 14) != 14)
		fail("write \"discover tasks\" to ctl: %s", errname(errno));
	/* FifoScheduler::EnclaveReady: each agent's own gtid to its CPU's
	 * queue, with its agent barrier; ESTALE (a stale barrier) is retried. */
	for (int i = 0; i < g_ncpus; i++) {
		struct agent *a = &g_agents[i];
		struct waiter w;
		int e;

		waiter_init(&w);
		while ((e = channel_associate(&a->chan, a->gtid, agent_barrier(a), NULL)) != 0) {
			if (e != ESTALE)
				fail("EnclaveReady: GHOST_IOC_ASSOC_QUEUE(agent %d's gtid %" PRId64
				     ", its agent barrier %u) to CPU %d's queue: %s; the library "
				     "CHECKs errno == ESTALE",
				     a->cpu, a->gtid, agent_barrier(a), a->cpu, errname(e));
			waiter_tick(&w, "ASSOC_QUEUE of agent %d to stop returning ESTALE", a->cpu);
		}
	}
	if (SC->deliver_ticks)
		write_tunable("deliver_ticks", "1");
	for (int i = 0; i < g_ncpus; i++)
		notify(&g_agents[i].enclave_ready, "enclave_ready");
	/* LocalEnclave::AdvertiseOnline. */
	E.online_fd = openat(E.dir_fd, "agent_online", O_RDWR | O_CLOEXEC);
	if (E.online_fd < 0)
		fail("AdvertiseOnline: open agent_online O_RDWR: %s", errname(errno));
	progress();
}

/*
 * FullAgent::TerminateAgentTasks: PrepareToExit (close agent_online), then
 * TerminateBegin on each agent (Finished, a Ping from this non-agent thread,
 * the exit notification), then TerminateComplete (join, then poll the
 * agent's status word until CANFREE), then ~LocalAgent frees the word.
 */
static void terminate_agents(void)
{
	if (close(E.online_fd) != 0)
		fail("PrepareToExit: close(agent_online): %s", errname(errno));
	E.online_fd = -1;
	for (int i = 0; i < g_ncpus; i++) {
		struct agent *a = &g_agents[i];

		atomic_store(&a->finished, 1);
		int e = ping(a->cpu, false);

		if (e)
			fail("TerminateBegin: Ping of agent %d from the agent process's main thread "
			     "(GHOST_IOC_RUN gtid GHOST_AGENT_GTID, run_cpu %d): %s",
			     a->cpu, a->cpu, errname(e));
		notify(&a->do_exit, "do_exit");
	}
	for (int i = 0; i < g_ncpus; i++) {
		struct agent *a = &g_agents[i];

		WAIT_FOR(atomic_load(&a->exited),
			 "agent %d to leave its loop after the Ping (in ghost_run: %d)", a->cpu,
			 atomic_load(&a->view->in_yield));
		pthread_join(a->thread, NULL);
		WAIT_FOR(sw_flags(a->sw) & GHOST_SW_F_CANFREE,
			 "TerminateComplete: agent %d's status word to become CANFREE after its "
			 "thread exited (flags %#x)",
			 a->cpu, sw_flags(a->sw));
		progress();
	}
	for (int i = 0; i < g_ncpus; i++) {
		char whose[48];

		snprintf(whose, sizeof(whose), "agent %d's status word", g_agents[i].cpu);
		status_word_free(g_agents[i].sw_info, whose);
	}
}

static void sigusr1_handler(int sig)
{
	(void)sig;
	if (t_agent_idx >= 0 && S)
		atomic_fetch_add(&S->agents[t_agent_idx].signals, 1);
}

static void *rpc_thread(void *arg)
{
	(void)arg;
	snprintf(t_who, sizeof(t_who), "rpc thread");
	for (;;) {
		wait_notification(&S->rpc_pending, true, "an RPC");
		reset_notification(&S->rpc_pending);
		S->rpc_res = SC->rpc ? SC->rpc(S->rpc_req, S->rpc_arg0, S->rpc_arg1) : -1;
		notify(&S->rpc_done, "rpc_done");
	}
	return NULL;
}

/* AgentProcess's child: the FullAgent, until the control says stop. */
static void __attribute__((noreturn)) agent_process(void)
{
	snprintf(t_who, sizeof(t_who), "agent process");
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	struct sigaction sa = { .sa_handler = sigusr1_handler, .sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	enclave_create();
	/* FifoScheduler: one queue per CPU, woken on that CPU; the first is
	 * the default queue, which every agent becomes the agent with. */
	for (int i = 0; i < g_ncpus; i++)
		channel_create(&g_agents[i].chan, GHOST_MAX_QUEUE_ELEMS, 0, g_cpus[i]);
	g_default_chan = &g_agents[0].chan;
	for (int i = 0; i < g_ncpus; i++)
		g_agents[i].yield_via_syscall = strcmp(SC->name, "ping_and_rpc_wake") == 0 && i % 2;
	start_agents();
	enclave_ready();
	if (SC->after_ready)
		SC->after_ready();
	pthread_t rpc;

	if (pthread_create(&rpc, NULL, rpc_thread, NULL) != 0)
		fail("pthread_create(rpc thread)");
	notify(&S->agent_ready, "agent_ready");
	wait_notification(&S->kill_agent, true, "the control's stop");
	terminate_agents();
	enclave_close();
	_exit(0);
}

/* ------------------------------------------------------------------------ */
/* The control process (the test, as ghOSt's tests drive AgentProcess).     */

static int64_t rpc(int64_t req, int64_t a0, int64_t a1)
{
	S->rpc_req = req;
	S->rpc_arg0 = a0;
	S->rpc_arg1 = a1;
	notify(&S->rpc_pending, "rpc_pending");
	wait_notification(&S->rpc_done, false, "an RPC reply");
	reset_notification(&S->rpc_done);
	return S->rpc_res;
}

/* The enclave for tasks: ghOSt's FindActiveEnclave ("active yes"). */
static void find_active_enclave(int *ctl, int *dir)
{
	int id = atomic_load(&S->enclave_id);
	char path[96], buf[256];

	snprintf(path, sizeof(path), GHOSTFS "/enclave_%d", id);
	*dir = open(path, O_PATH | O_CLOEXEC);
	if (*dir < 0)
		fail("FindActiveEnclave: open %s: %s", path, errname(errno));
	read_all_at(*dir, "status", buf, sizeof(buf));
	bool active = false;

	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		active |= strcmp(line, "active yes") == 0;
	if (!active)
		fail("FindActiveEnclave: enclave_%d's status has no line \"active yes\" with its "
		     "agent online",
		     id);
	*ctl = openat(*dir, "ctl", O_RDONLY | O_CLOEXEC);
	if (*ctl < 0)
		fail("FindActiveEnclave: open ctl O_RDONLY: %s", errname(errno));
}

/* Ghost::SchedTaskEnterGhost: the pid (0: the caller) to `tasks`. */
static int enter_ghost(int dir, pid_t pid)
{
	char s[32];

	snprintf(s, sizeof(s), "%d", pid);
	return write_at(dir, "tasks", s);
}

static void run_control(const struct scenario *sc)
{
	S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (S == MAP_FAILED)
		fail("mmap of the shared blob: %s", errname(errno));
	memset(S, 0, sizeof(*S));
	S->ncpus = g_ncpus;
	fflush(NULL);
	pid_t pid = fork();

	if (pid < 0)
		fail("fork: %s", errname(errno));
	if (pid == 0)
		agent_process();
	g_agent_pid = pid;
	g_is_control = true;
	snprintf(t_who, sizeof(t_who), "control");
	wait_notification(&S->agent_ready, false, "the agent process to start its agents");
	sc->control();
	/* ~AgentProcess: kill_agent, then wait for the child. */
	g_agent_may_exit = true;
	notify(&S->kill_agent, "kill_agent");
	int st = 0;

	WAIT_FOR(waitpid(pid, &st, WNOHANG) == pid,
		 "the agent process to stop its agents and exit");
	g_agent_pid = 0;
	check_other_process();
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("the agent process ended with status %#x", st);
	char path[96];
	struct stat sb;

	snprintf(path, sizeof(path), GHOSTFS "/enclave_%d", atomic_load(&S->enclave_id));
	if (stat(path, &sb) == 0)
		fail("%s is still there after ~LocalEnclave wrote \"destroy\"", path);
	atomic_store(&S->enclave_id, 0);
}

/* A thread of the workload (ghOSt's GhostThread). */
struct gthread {
	pthread_t thread;
	int idx;
	int dir;
	void (*body)(struct gthread *);
	pid_t tid;
	int64_t gtid;
	atomic_int done;
};

static void *gthread_main(void *arg)
{
	struct gthread *g = arg;

	snprintf(t_who, sizeof(t_who), "task %d", g->idx);
	g->tid = gettid();
	g->gtid = read_gtid(g->tid);
	g->body(g);
	atomic_store(&g->done, 1);
	progress();
	return NULL;
}

static void gthread_start(struct gthread *g, int idx, int dir, void (*body)(struct gthread *))
{
	g->idx = idx;
	g->dir = dir;
	g->body = body;
	atomic_store(&g->done, 0);
	int e = pthread_create(&g->thread, NULL, gthread_main, g);

	if (e)
		fail("GhostThread: pthread_create: %s", errname(e));
}

static void gthread_join(struct gthread *g)
{
	WAIT_FOR(atomic_load(&g->done), "workload thread %d to finish", g->idx);
	pthread_join(g->thread, NULL);
}

/* The GhostThread prologue: join the enclave through `tasks`. */
static void gthread_enter(struct gthread *g)
{
	int e = enter_ghost(g->dir, 0);

	if (e)
		fail("SchedTaskEnterGhost(0): write \"0\" to tasks: %s", errname(e));
	int pol = sched_getscheduler(0);

	if (pol != SCHED_GHOST)
		fail("after SchedTaskEnterGhost, sched_getscheduler(0) is %d, want SCHED_GHOST", pol);
	progress();
}

/* The RPCs every scenario serves. */
static int64_t common_rpc(int64_t req, int64_t a0, int64_t a1)
{
	switch (req) {
	case RPC_WAIT_FOR_IDLE:
		for (int i = 0; i < g_ncpus; i++)
			WAIT_FOR(atomic_load(&view_of(i)->idle) > 0, "agent %d to idle (LocalYield)",
				 g_cpus[i]);
		return 0;
	case RPC_SW_GET_INFO: {
		struct ghost_ioc_sw_get_info gi = {
			.request = { .type = (enum ghost_type)a0, .arg = (uint64_t)a1 },
		};
		return ioctl(E.ctl_fd, GHOST_IOC_SW_GET_INFO, &gi) == 0 ? 0 : errno;
	}
	default:
		return -1;
	}
}

/* ------------------------------------------------------------------------ */
/* Per-CPU FIFO (schedulers/fifo/per_cpu) on BasicDispatchScheduler.        */

enum { T_BLOCKED, T_RUNNABLE, T_QUEUED, T_ONCPU };

struct task {
	bool used;
	int64_t gtid;
	struct ghost_sw_info sw_info;
	struct ghost_status_word *sw;
	uint32_t seqnum;
	int run_state, cpu;
	bool preempted, prio_boost;
	char hist[48]; /* the messages seen, one letter each */
	int nhist;
};

struct cpu_state {
	struct task *current;
	struct task *rq[MAX_TASKS];
	int rq_len;
	pthread_mutex_t mu;
};

static struct task g_tasks[MAX_TASKS];
static pthread_mutex_t g_tasks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cpu_state g_cs[MAX_CPUS];
static atomic_int g_next_cpu;

static const char *task_history(const struct task *t)
{
	static __thread char buf[96];

	snprintf(buf, sizeof(buf), "gtid %" PRId64 " (tid %d, messages so far: %.*s)", t->gtid,
		 tid_of_gtid(t->gtid), t->nhist, t->hist);
	return buf;
}

static struct task *task_find(int64_t gtid)
{
	struct task *r = NULL;

	pthread_mutex_lock(&g_tasks_mu);
	for (int i = 0; i < MAX_TASKS && !r; i++)
		if (g_tasks[i].used && g_tasks[i].gtid == gtid)
			r = &g_tasks[i];
	pthread_mutex_unlock(&g_tasks_mu);
	return r;
}

static struct task *task_alloc(int64_t gtid, struct ghost_sw_info info)
{
	struct task *r = NULL;

	pthread_mutex_lock(&g_tasks_mu);
	for (int i = 0; i < MAX_TASKS && !r; i++) {
		if (!g_tasks[i].used) {
			r = &g_tasks[i];
			memset(r, 0, sizeof(*r));
			r->used = true;
		}
	}
	pthread_mutex_unlock(&g_tasks_mu);
	if (!r)
		fail("TaskAllocator: more than %d tasks", MAX_TASKS);
	r->gtid = gtid;
	r->sw_info = info;
	r->sw = status_word(info, "TASK_NEW's sw_info");
	r->cpu = -1;
	r->run_state = T_BLOCKED;
	return r;
}

/* ~Task: LocalStatusWord::Free, then the allocator forgets it. */
static void task_free(struct task *t)
{
	status_word_free(t->sw_info, task_history(t));
	pthread_mutex_lock(&g_tasks_mu);
	t->used = false;
	pthread_mutex_unlock(&g_tasks_mu);
}

static int tasks_live(void)
{
	int n = 0;

	pthread_mutex_lock(&g_tasks_mu);
	for (int i = 0; i < MAX_TASKS; i++)
		n += g_tasks[i].used;
	pthread_mutex_unlock(&g_tasks_mu);
	return n;
}

static struct cpu_state *cpu_state_of(const struct task *t)
{
	if (t->cpu < 0 || t->cpu >= MAX_CPUS)
		fail("cpu_state_of: CHECK_GE(task->cpu, 0) for %s", task_history(t));
	return &g_cs[t->cpu];
}

/* FifoRq::Enqueue: a boosted task goes to the front. */
static void rq_enqueue(struct cpu_state *cs, struct task *t)
{
	if (t->cpu < 0 || t->run_state != T_RUNNABLE)
		fail("FifoRq::Enqueue: CHECK(cpu >= 0 && kRunnable) for %s (state %d)",
		     task_history(t), t->run_state);
	t->run_state = T_QUEUED;
	pthread_mutex_lock(&cs->mu);
	if (t->prio_boost) {
		memmove(&cs->rq[1], &cs->rq[0], sizeof(cs->rq[0]) * (size_t)cs->rq_len);
		cs->rq[0] = t;
	} else {
		cs->rq[cs->rq_len] = t;
	}
	cs->rq_len++;
	pthread_mutex_unlock(&cs->mu);
}

static struct task *rq_dequeue(struct cpu_state *cs)
{
	struct task *t = NULL;

	pthread_mutex_lock(&cs->mu);
	if (cs->rq_len) {
		t = cs->rq[0];
		memmove(&cs->rq[0], &cs->rq[1], sizeof(cs->rq[0]) * (size_t)(cs->rq_len - 1));
		cs->rq_len--;
	}
	pthread_mutex_unlock(&cs->mu);
	if (t) {
		if (t->run_state != T_QUEUED)
			fail("FifoRq::Dequeue: CHECK(task->queued()) for %s", task_history(t));
		t->run_state = T_RUNNABLE;
	}
	return t;
}

static void rq_erase(struct cpu_state *cs, struct task *t)
{
	bool found = false;

	pthread_mutex_lock(&cs->mu);
	for (int i = 0; i < cs->rq_len && !found; i++) {
		if (cs->rq[i] == t) {
			memmove(&cs->rq[i], &cs->rq[i + 1],
				sizeof(cs->rq[0]) * (size_t)(cs->rq_len - i - 1));
			cs->rq_len--;
			found = true;
		}
	}
	pthread_mutex_unlock(&cs->mu);
	if (!found)
		fail("FifoRq::Erase: %s is not on CPU %d's runqueue", task_history(t), t->cpu);
	t->run_state = T_RUNNABLE;
}

static bool rq_empty(struct cpu_state *cs)
{
	pthread_mutex_lock(&cs->mu);
	bool e = cs->rq_len == 0;

	pthread_mutex_unlock(&cs->mu);
	return e;
}

static struct agent *agent_of_cpu(int cpu)
{
	for (int i = 0; i < g_ncpus; i++)
		if (g_agents[i].cpu == cpu)
			return &g_agents[i];
	fail("no agent for CPU %d", cpu);
}

/* FifoScheduler::Migrate: ASSOC_QUEUE to the CPU's queue, then Ping. */
static void fifo_migrate(struct agent *self, struct task *t, int cpu, uint32_t seqnum)
{
	if (t->run_state != T_RUNNABLE || t->cpu != -1)
		fail("Migrate: CHECK(kRunnable && cpu == -1) for %s", task_history(t));
	struct agent *to = agent_of_cpu(cpu);
	int status = 0, e = channel_associate(&to->chan, t->gtid, seqnum, &status);

	if (e)
		fail("Migrate: CHECK(AssociateTask(%s, seqnum %u)) to CPU %d's queue: %s",
		     task_history(t), seqnum, cpu, errname(e));
	t->cpu = cpu;
	atomic_fetch_add(&S->assigned[cpu], 1);
	rq_enqueue(&g_cs[cpu], t);
	e = ping(cpu, false);
	if (e)
		fail("Migrate: Ping of agent %d from agent %d (GHOST_IOC_RUN gtid "
		     "GHOST_AGENT_GTID): %s",
		     cpu, self->cpu, errname(e));
	atomic_fetch_add(cpu == self->cpu ? &S->pings_self : &S->pings_remote, 1);
}

static int fifo_assign_cpu(void)
{
	return g_cpus[atomic_fetch_add(&g_next_cpu, 1) % g_ncpus];
}

/* FifoScheduler::TaskOffCpu. */
static void fifo_off_cpu(struct task *t, bool blocked, bool from_switchto)
{
	struct cpu_state *cs = cpu_state_of(t);

	if (t->run_state == T_ONCPU) {
		if (cs->current != t)
			fail("TaskOffCpu: CHECK_EQ(cs->current, task) for %s", task_history(t));
		cs->current = NULL;
	} else if (!from_switchto || t->run_state != T_BLOCKED) {
		fail("TaskOffCpu: CHECK(from_switchto) for %s: the agent does not have it on a "
		     "CPU (state %d)",
		     task_history(t), t->run_state);
	}
	t->run_state = blocked ? T_BLOCKED : T_RUNNABLE;
}

/* BasicDispatchScheduler::DispatchMessage with FifoScheduler's callbacks. */
static void fifo_dispatch(struct agent *a, const struct message *m)
{
	int type = m->hdr.type;

	atomic_fetch_add(&S->n_msg[type & 255], 1);
	if (type == MSG_NOP)
		return;
	if (is_cpu_msg(type)) {
		switch (type) {
		case MSG_CPU_TICK:
			if (msg_cpu(m) != a->cpu)
				fail("CPU_TICK of CPU %d arrived on the queue of agent %d (the CPU's "
				     "messages must go to the queue its agent is associated with)",
				     msg_cpu(m), a->cpu);
			atomic_fetch_add(&a->view->ticks, 1);
			break;
		case MSG_CPU_TIMER_EXPIRED:
		case MSG_CPU_NOT_IDLE:
		case MSG_CPU_AVAILABLE:
		case MSG_CPU_BUSY:
		case MSG_CPU_AGENT_BLOCKED:
		case MSG_CPU_AGENT_WAKEUP:
			break;
		default:
			fail("DispatchMessage: GHOST_ERROR(\"Unhandled message type %d\")", type);
		}
		return;
	}
	int64_t gtid = msg_gtid(m);

	if (gtid == 0)
		fail("DispatchMessage: CHECK_NE(gtid, 0) for a %s", msg_name(type));
	struct task *t;

	if (type == MSG_TASK_NEW) {
		struct ghost_msg_payload_task_new p;

		PAYLOAD(p, m);

		if (task_find(gtid))
			fail("DispatchMessage: a second TASK_NEW for gtid %" PRId64, gtid);
		t = task_alloc(gtid, p.sw_info);
		atomic_fetch_add(&a->view->task_new, 1);
		/* FifoScheduler::TaskNew. */
		t->seqnum = m->hdr.seqnum;
		t->hist[t->nhist++] = 'N';
		t->run_state = T_BLOCKED;
		if (p.runnable) {
			t->run_state = T_RUNNABLE;
			fifo_migrate(a, t, fifo_assign_cpu(), m->hdr.seqnum);
		}
		return;
	}
	t = task_find(gtid);
	if (!t)
		fail("DispatchMessage: %s for gtid %" PRId64 " (tid %d), which had no TASK_NEW",
		     msg_name(type), gtid, tid_of_gtid(gtid));
	if (t->nhist < (int)sizeof(t->hist))
		t->hist[t->nhist++] = "DBWNPYXSAOCL"[(type - MSG_TASK_DEAD) % 12];
	switch (type) {
	case MSG_TASK_PREEMPT: {
		struct ghost_msg_payload_task_preempt p;

		PAYLOAD(p, m);

		fifo_off_cpu(t, false, p.from_switchto);
		t->preempted = true;
		t->prio_boost = true;
		rq_enqueue(cpu_state_of(t), t);
		break;
	}
	case MSG_TASK_DEAD:
		/* FifoScheduler::TaskDead: CHECK(task->blocked()). */
		if (t->run_state != T_BLOCKED)
			fail("TaskDead: CHECK(task->blocked()) for %s: a task that exits on a CPU must "
			     "get TASK_BLOCKED before TASK_DEAD",
			     task_history(t));
		task_free(t);
		return;
	case MSG_TASK_WAKEUP: {
		struct ghost_msg_payload_task_wakeup p;

		PAYLOAD(p, m);

		if (t->run_state != T_BLOCKED)
			fail("TaskRunnable: CHECK(task->blocked()) for %s: TASK_WAKEUP without "
			     "TASK_BLOCKED first",
			     task_history(t));
		t->run_state = T_RUNNABLE;
		t->prio_boost = !p.deferrable;
		if (t->cpu < 0)
			fifo_migrate(a, t, fifo_assign_cpu(), m->hdr.seqnum);
		else
			rq_enqueue(cpu_state_of(t), t);
		break;
	}
	case MSG_TASK_BLOCKED: {
		struct ghost_msg_payload_task_blocked p;

		PAYLOAD(p, m);

		fifo_off_cpu(t, true, p.from_switchto);
		break;
	}
	case MSG_TASK_YIELD: {
		struct ghost_msg_payload_task_yield p;

		PAYLOAD(p, m);

		fifo_off_cpu(t, false, p.from_switchto);
		rq_enqueue(cpu_state_of(t), t);
		break;
	}
	case MSG_TASK_DEPARTED: {
		struct ghost_msg_payload_task_departed p;

		PAYLOAD(p, m);

		if (t->run_state == T_ONCPU || p.from_switchto)
			fifo_off_cpu(t, false, p.from_switchto);
		else if (t->run_state == T_QUEUED)
			rq_erase(cpu_state_of(t), t);
		else if (t->run_state != T_BLOCKED)
			fail("TaskDeparted: CHECK(task->blocked()) for %s", task_history(t));
		task_free(t);
		return;
	}
	case MSG_TASK_SWITCHTO:
		fifo_off_cpu(t, true, false);
		break;
	case MSG_TASK_AFFINITY_CHANGED:
	case MSG_TASK_PRIORITY_CHANGED:
	case MSG_TASK_ON_CPU:
		break;
	default:
		fail("DispatchMessage: GHOST_ERROR(\"Unhandled message type %d\") (%s) for %s", type,
		     msg_name(type), task_history(t));
	}
	/* Task::Advance: CHECK_GT(next_seqnum, seqnum). */
	if (m->hdr.seqnum <= t->seqnum)
		fail("Task::Advance: CHECK_GT(%u, %u): %s's seqnum did not increase for %s",
		     m->hdr.seqnum, t->seqnum, msg_name(type), task_history(t));
	t->seqnum = m->hdr.seqnum;
}

/* FifoScheduler::FifoSchedule. */
static void fifo_schedule(struct agent *a, uint32_t barrier, bool prio_boost)
{
	struct cpu_state *cs = &g_cs[a->cpu];
	struct task *next = NULL;

	if (!prio_boost) {
		next = cs->current;
		if (!next)
			next = rq_dequeue(cs);
	}
	if (!next) {
		int flags = 0;

		if (prio_boost && (cs->current || !rq_empty(cs)))
			flags = RTLA_ON_IDLE;
		local_yield(a, barrier, flags);
		return;
	}
	/* Wait for `next` to get off its previous CPU. */
	WAIT_FOR(!(sw_flags(next->sw) & GHOST_SW_TASK_ONCPU),
		 "the ONCPU flag of %s to clear before committing it on CPU %d", task_history(next),
		 a->cpu);
	txn_open(a->cpu, next->gtid, next->seqnum, barrier, 0, COMMIT_AT_TXN_COMMIT);
	if (txn_commit(a->cpu)) {
		cs->current = next;
		next->run_state = T_ONCPU;
		next->cpu = a->cpu;
		next->preempted = false;
		next->prio_boost = false;
		atomic_fetch_add(&S->ran_on[a->cpu], 1);
	} else {
		if (next == cs->current)
			fifo_off_cpu(next, false, false);
		next->prio_boost = true;
		rq_enqueue(cs, next);
	}
	progress();
}

/* FifoScheduler::Schedule: the barrier, then drain, then decide. */
static void fifo_round(struct agent *a)
{
	uint32_t barrier = agent_barrier(a);
	struct message m;

	while (channel_peek(&a->chan, &m)) {
		fifo_dispatch(a, &m);
		channel_consume(&a->chan, &m);
		atomic_fetch_add(&a->view->msgs, 1);
		progress();
	}
	fifo_schedule(a, barrier, boosted(a));
}

/* FifoAgent::AgentThread. */
static void fifo_agent_loop(struct agent *a)
{
	agent_thread_start(a);
	while (!finished(a) || !rq_empty(&g_cs[a->cpu]))
		fifo_round(a);
}

static void fifo_init(void)
{
	for (int i = 0; i < MAX_CPUS; i++)
		pthread_mutex_init(&g_cs[i].mu, NULL);
}

static int64_t fifo_rpc(int64_t req, int64_t a0, int64_t a1)
{
	if (req == RPC_COUNT_TASKS)
		return tasks_live();
	return common_rpc(req, a0, a1);
}

/* ------------------------------------------------------------------------ */
/* Scenario: agent_start_stop.                                              */

/*
 * agent_test's SetSched: the agent is SCHED_GHOST|RESET_ON_FORK and can
 * neither clear RESET_ON_FORK nor leave the class.
 */
static void check_agent_setsched(struct agent *a)
{
	struct sched_param p = { 0 };

	if (sched_setscheduler(0, SCHED_GHOST, &p) != -1 || errno != EPERM)
		fail("SetSched: agent %d's sched_setscheduler(0, SCHED_GHOST) (clearing "
		     "RESET_ON_FORK): %s, want EPERM",
		     a->cpu, errno ? errname(errno) : "success");
	if (sched_setscheduler(0, SCHED_OTHER, &p) != -1 || errno != EPERM)
		fail("SetSched: agent %d's sched_setscheduler(0, SCHED_OTHER): %s, want EPERM",
		     a->cpu, errno ? errname(errno) : "success");
	if (sched_getscheduler(0) != (SCHED_GHOST | SCHED_RESET_ON_FORK))
		fail("SetSched: agent %d's policy changed to %#x", a->cpu, sched_getscheduler(0));
}

/*
 * The per-CPU FIFO agent, first spinning (as agent_test's CpuTick agent,
 * yielding only when another class wants the CPU) until a CPU_TICK of its
 * own CPU arrives on its own queue, then idle in local yields.
 */
static void start_stop_agent_loop(struct agent *a)
{
	agent_thread_start(a);
	check_agent_setsched(a);
	struct waiter w;

	waiter_init(&w);
	while (atomic_load(&a->view->ticks) == 0) {
		uint32_t barrier = agent_barrier(a);
		struct message m;

		while (channel_peek(&a->chan, &m)) {
			fifo_dispatch(a, &m);
			channel_consume(&a->chan, &m);
		}
		if (atomic_load(&a->view->ticks))
			break;
		if (boosted(a))
			local_yield(a, barrier, RTLA_ON_IDLE);
		waiter_tick(&w, "a CPU_TICK of CPU %d on agent %d's queue (deliver_ticks 1)", a->cpu,
			    a->cpu);
	}
	progress();
	while (!finished(a) || !rq_empty(&g_cs[a->cpu]))
		fifo_round(a);
}

static void start_stop_after_ready(void)
{
	for (int i = 0; i < g_ncpus; i++)
		WAIT_FOR(atomic_load(&view_of(i)->ticks) > 0,
			 "a CPU_TICK of CPU %d on its agent's queue", g_cpus[i]);
	write_tunable("deliver_ticks", "0");
}

static void start_stop_control(void)
{
	int ctl, dir;
	char buf[64];

	find_active_enclave(&ctl, &dir);
	read_all_at(dir, "agent_online", buf, sizeof(buf));
	if (atoi(buf) != 1)
		fail("agent_online reads %s while the agent process holds it open O_RDWR",
		     quoted(buf));
	if (rpc(RPC_WAIT_FOR_IDLE, 0, 0) != 0)
		fail("RPC kWaitForIdle");
	for (int i = 0; i < g_ncpus; i++) {
		struct agent_view *v = view_of(i);

		info("agent %d: gtid %" PRId64 ", %lu CPU_TICK on its queue, %lu yields", g_cpus[i],
		     v->gtid, atomic_load(&v->ticks), atomic_load(&v->idle));
	}
	close(ctl);
	close(dir);
}

/* ------------------------------------------------------------------------ */
/* Scenario: schedule_tasks.                                                */

#define WORKERS 6
#define WORK_ITERATIONS 4

static volatile unsigned long g_spin_sink;

static void spin_a_little(void)
{
	for (int i = 0; i < 20000; i++)
		g_spin_sink += (unsigned long)i;
}

static void *subthread_main(void *arg)
{
	(void)arg;
	snprintf(t_who, sizeof(t_who), "task 0's child");
	/* ApiTest.GhostCloneGhost: a thread a ghost task clones is ghost. */
	if (sched_getscheduler(0) != SCHED_GHOST)
		fail("a thread cloned by a ghost task has policy %d, want SCHED_GHOST",
		     sched_getscheduler(0));
	sleep_us(1000);
	atomic_fetch_add(&S->work_done, 1);
	progress();
	return NULL;
}

static void worker_body(struct gthread *g)
{
	gthread_enter(g);
	for (int i = 0; i < WORK_ITERATIONS; i++) {
		spin_a_little();
		sleep_us(1000);
		if (i == 1)
			sched_yield();
		progress();
	}
	if (g->idx == 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, subthread_main, NULL) != 0)
			fail("pthread_create from a ghost task");
		pthread_join(t, NULL);
	}
	atomic_fetch_add(&S->work_done, 1);
}

static void schedule_tasks_control(void)
{
	int ctl, dir;
	struct gthread g[WORKERS];

	find_active_enclave(&ctl, &dir);
	for (int i = 0; i < WORKERS; i++)
		gthread_start(&g[i], i, dir, worker_body);
	for (int i = 0; i < WORKERS; i++)
		gthread_join(&g[i]);
	/* pthread_join returns before the kernel is done with a dying task:
	 * wait until the agents have seen every TASK_DEAD (kCountAllTasks). */
	int64_t n;

	WAIT_FOR((n = rpc(RPC_COUNT_TASKS, 0, 0)) == 0, "the agents to see every TASK_DEAD (%" PRId64
		 " tasks left)", n);
	unsigned long want = WORKERS + 1;
	unsigned long nnew = atomic_load(&S->n_msg[MSG_TASK_NEW]);
	unsigned long ndead = atomic_load(&S->n_msg[MSG_TASK_DEAD]);

	if (atomic_load(&S->work_done) != want)
		fail("%lu of %lu workload threads finished", atomic_load(&S->work_done), want);
	if (nnew != want || ndead != want)
		fail("%lu TASK_NEW and %lu TASK_DEAD for %lu tasks", nnew, ndead, want);
	if (atomic_load(&S->sw_frees) != want)
		fail("%lu status words freed for %lu dead tasks", atomic_load(&S->sw_frees), want);
	for (int i = 0; i < g_ncpus; i++)
		if (atomic_load(&S->assigned[g_cpus[i]]) == 0)
			fail("no task was spread to CPU %d", g_cpus[i]);
	if (g_ncpus > 1 && atomic_load(&S->pings_remote) == 0)
		fail("no new task was handed to another agent (ASSOC_QUEUE + Ping)");
	char spread[128] = "";
	size_t o = 0;

	for (int i = 0; i < g_ncpus; i++)
		o += (size_t)snprintf(spread + o, sizeof(spread) - o, " cpu%d:%lu/%lu", g_cpus[i],
				      atomic_load(&S->assigned[g_cpus[i]]),
				      atomic_load(&S->ran_on[g_cpus[i]]));
	info("%lu tasks; spread/commits%s; pings to another agent %lu, to itself %lu; "
	     "TASK_WAKEUP %lu BLOCKED %lu YIELD %lu PREEMPT %lu; failed commits %lu",
	     want, spread, atomic_load(&S->pings_remote), atomic_load(&S->pings_self),
	     atomic_load(&S->n_msg[MSG_TASK_WAKEUP]), atomic_load(&S->n_msg[MSG_TASK_BLOCKED]),
	     atomic_load(&S->n_msg[MSG_TASK_YIELD]), atomic_load(&S->n_msg[MSG_TASK_PREEMPT]),
	     atomic_load(&S->commits_failed));
	close(ctl);
	close(dir);
}

/* ------------------------------------------------------------------------ */
/* Scenario: ping_and_rpc_wake.                                             */

/*
 * agent_test's SimpleAgent with a queue: drain (the probe's TASK_NEW and
 * TASK_DEPARTED land on the first agent's queue), carry out the mailbox,
 * then a local yield. Odd agents yield through the ghost_run system call.
 */
static void wake_agent_loop(struct agent *a)
{
	struct ghost_sw_info probe_sw = { 0 };
	uint32_t probe_seq = 0;

	agent_thread_start(a);
	while (!finished(a)) {
		uint32_t barrier = agent_barrier(a);
		struct message m;

		while (channel_peek(&a->chan, &m)) {
			int type = m.hdr.type;

			if (is_task_msg(type)) {
				if (msg_gtid(&m) != S->probe_gtid)
					fail("%s for gtid %" PRId64 ", not the probe's", msg_name(type),
					     msg_gtid(&m));
				if (type != MSG_TASK_NEW && m.hdr.seqnum <= probe_seq)
					fail("Task::Advance: %s's seqnum %u after %u", msg_name(type),
					     m.hdr.seqnum, probe_seq);
				probe_seq = m.hdr.seqnum;
			}
			if (type == MSG_TASK_NEW) {
				struct ghost_msg_payload_task_new p;

		PAYLOAD(p, &m);

				probe_sw = p.sw_info;
				atomic_store(&S->probe_new_runnable, p.runnable + 1);
				atomic_fetch_add(&a->view->task_new, 1);
			} else if (type == MSG_TASK_DEPARTED) {
				status_word_free(probe_sw, "the departed probe's status word");
				atomic_fetch_add(&a->view->departed, 1);
			} else if (is_task_msg(type) && type != MSG_TASK_AFFINITY_CHANGED &&
				   type != MSG_TASK_PRIORITY_CHANGED) {
				fail("the probe (blocked in CFS when it was moved into ghost) got %s",
				     msg_name(type));
			}
			channel_consume(&a->chan, &m);
			atomic_fetch_add(&a->view->msgs, 1);
			progress();
		}
		run_mailbox(a);
		if (boosted(a)) {
			/* Another class wants the CPU: back when it idles. */
			atomic_fetch_add(&a->view->rtla_yields, 1);
			local_yield(a, barrier, RTLA_ON_IDLE);
			atomic_fetch_add(&a->view->rtla_returns, 1);
			continue;
		}
		local_yield(a, barrier, 0);
	}
}

/* Waits until agent `i` has started a local yield (and gives it a moment
 * to block), then returns its wake count. */
static unsigned long settled(int i)
{
	struct agent_view *v = view_of(i);

	WAIT_FOR(atomic_load(&v->in_yield), "agent %d to enter ghost_run", g_cpus[i]);
	sleep_us(5000);
	return atomic_load(&v->wakes);
}

static int64_t wake_rpc(int64_t req, int64_t a0, int64_t a1)
{
	if (req != RPC_PING_AGENTS)
		return common_rpc(req, a0, a1);
	/* agent_test's Ping (kPingAgents), from this rpc thread of the agent
	 * process: a non-agent thread. Then once through the system call. */
	for (int i = 0; i < g_ncpus; i++) {
		for (int n = 0; n < 4; n++) {
			bool via_syscall = n == 3;
			unsigned long w = settled(i);
			int e = ping(g_cpus[i], via_syscall);

			if (e)
				fail("Ping of agent %d from the rpc thread (a non-agent thread of the "
				     "agent process) via %s: %s",
				     g_cpus[i], via_syscall ? "the ghost_run syscall" : "GHOST_IOC_RUN",
				     errname(e));
			WAIT_FOR(atomic_load(&view_of(i)->wakes) > w,
				 "agent %d to return from ghost_run after a Ping from the rpc thread",
				 g_cpus[i]);
		}
	}
	return 0;
}

/* The probe: a CFS thread of the control process, blocked in read(). */
struct probe {
	pthread_t thread;
	int pipe[2];
	atomic_int tid;
	atomic_int done;
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	char c;

	snprintf(t_who, sizeof(t_who), "probe");
	S->probe_gtid = read_gtid(gettid());
	atomic_store(&p->tid, gettid());
	progress();
	while (read(p->pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	atomic_store(&p->done, 1);
	return NULL;
}

/* Leaves a command in agent i's mailbox. */
static void post(int i, int cmd, int arg)
{
	struct agent_view *v = view_of(i);

	v->cmd = cmd;
	v->cmd_arg = arg;
	atomic_fetch_add(&v->cmd_seq, 1);
}

static void wait_command(int i, const char *what)
{
	struct agent_view *v = view_of(i);

	WAIT_FOR(atomic_load(&v->done_seq) == atomic_load(&v->cmd_seq),
		 "agent %d to wake and carry out: %s", g_cpus[i], what);
	if (v->cmd_ret != 0)
		fail("agent %d's %s returned %d errno %s", g_cpus[i], what, v->cmd_ret,
		     errname(v->cmd_errno));
}

/* A CFS thread that spins on one CPU until told to block. */
struct hog {
	pthread_t thread;
	int cpu;
	int pipe[2];
	atomic_int spinning, stop;
};

static void *hog_main(void *arg)
{
	struct hog *h = arg;
	char c;

	snprintf(t_who, sizeof(t_who), "hog");
	pin_to(0, &h->cpu, 1, "the hog");
	while (!atomic_load(&h->stop))
		atomic_store(&h->spinning, 1);
	while (read(h->pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/* CPU `cpu`'s idle time in /proc/stat (USER_HZ ticks). */
static unsigned long long cpu_idle_ticks(int cpu)
{
	char buf[8192], name[16];

	read_all_at(AT_FDCWD, "/proc/stat", buf, sizeof(buf));
	snprintf(name, sizeof(name), "cpu%d ", cpu);
	char *l = strstr(buf, name);
	unsigned long long user, nice, sys, idle;

	if (!l || sscanf(l + strlen(name), "%llu %llu %llu %llu", &user, &nice, &sys, &idle) != 4)
		fail("no line for cpu%d in /proc/stat", cpu);
	return idle;
}

/*
 * RTLA_ON_IDLE: agent 0, woken while a CFS thread has its CPU, sees
 * BOOST_PRIO and yields with RTLA_ON_IDLE; once the thread blocks, the
 * agent must be back before its CPU has been idle for 2 s.
 */
static void check_rtla_on_idle(void)
{
	struct agent_view *v = view_of(0);
	struct hog h = { .cpu = g_cpus[0] };

	if (pipe2(h.pipe, O_CLOEXEC) != 0 || pthread_create(&h.thread, NULL, hog_main, &h) != 0)
		fail("starting the hog: %s", errname(errno));
	WAIT_FOR(atomic_load(&h.spinning), "the hog to spin on CPU %d", h.cpu);
	unsigned long y = atomic_load(&v->rtla_yields);

	if (rpc(RPC_PING_AGENTS, 0, 0) != 0)
		fail("RPC kPingAgents with the hog on CPU %d", h.cpu);
	WAIT_FOR(atomic_load(&v->rtla_yields) > y && atomic_load(&v->in_yield) &&
			 atomic_load(&v->rtla_yields) == atomic_load(&v->rtla_returns) + 1,
		 "agent %d, woken while a CFS thread spins on its CPU, to see BOOST_PRIO and "
		 "yield with RTLA_ON_IDLE",
		 h.cpu);
	unsigned long r = atomic_load(&v->rtla_returns);
	unsigned long long idle0 = cpu_idle_ticks(h.cpu);

	atomic_store(&h.stop, 1);
	struct waiter w;

	waiter_init(&w);
	while (atomic_load(&v->rtla_returns) == r) {
		unsigned long long idle = cpu_idle_ticks(h.cpu) - idle0;

		if (idle > 200)
			fail("agent %d yielded with RTLA_ON_IDLE while a CFS thread had its CPU; the "
			     "thread blocked and CPU %d has been idle for %llu ticks since, without the "
			     "agent coming back",
			     h.cpu, h.cpu, idle);
		waiter_tick(&w, "agent %d to come back from its RTLA_ON_IDLE yield", h.cpu);
	}
	info("RTLA_ON_IDLE: agent %d came back after its CPU was idle for %llu ticks", h.cpu,
	     cpu_idle_ticks(h.cpu) - idle0);
	if (write(h.pipe[1], "x", 1) != 1)
		fail("write to the hog's pipe");
	pthread_join(h.thread, NULL);
	close(h.pipe[0]);
	close(h.pipe[1]);
}

static void ping_and_rpc_wake_control(void)
{
	int ctl, dir;
	int n = g_ncpus;

	find_active_enclave(&ctl, &dir);
	if (rpc(RPC_WAIT_FOR_IDLE, 0, 0) != 0)
		fail("RPC kWaitForIdle");

	/* 1. A message on an agent's queue wakes it: the probe, blocked in
	 * CFS, moved into ghost (TASK_NEW on the default queue, the first
	 * agent's, woken on its CPU). The woken agent then pings the last
	 * agent with GHOST_IOC_RUN: a ping from another agent. */
	struct probe p = { 0 };

	if (pipe2(p.pipe, O_CLOEXEC) != 0)
		fail("pipe2: %s", errname(errno));
	if (pthread_create(&p.thread, NULL, probe_main, &p) != 0)
		fail("pthread_create(probe)");
	WAIT_FOR(atomic_load(&p.tid) && thread_state(atomic_load(&p.tid)) == 'S',
		 "the probe to block in read()");
	unsigned long w0 = settled(0), wl = settled(n - 1);

	post(0, CMD_PING_IOCTL, g_cpus[n - 1]);
	int e = enter_ghost(dir, atomic_load(&p.tid));

	if (e)
		fail("write the blocked probe's tid %d to tasks: %s", atomic_load(&p.tid),
		     errname(e));
	WAIT_FOR(atomic_load(&view_of(0)->task_new) == 1,
		 "TASK_NEW of the probe on agent %d's queue to wake agent %d", g_cpus[0], g_cpus[0]);
	if (atomic_load(&view_of(0)->wakes) <= w0)
		fail("agent %d handled TASK_NEW without returning from ghost_run", g_cpus[0]);
	if (atomic_load(&S->probe_new_runnable) != 1)
		fail("TASK_NEW of a thread blocked in read() says runnable %d",
		     atomic_load(&S->probe_new_runnable) - 1);
	wait_command(0, "Ping of the last agent via GHOST_IOC_RUN");
	if (n > 1)
		WAIT_FOR(atomic_load(&view_of(n - 1)->wakes) > wl,
			 "agent %d to return from ghost_run after agent %d pinged it (GHOST_IOC_RUN)",
			 g_cpus[n - 1], g_cpus[0]);

	/* 2. The probe leaves ghost (TASK_DEPARTED wakes the first agent,
	 * which frees its status word); that agent then pings the last one
	 * with the ghost_run system call. */
	w0 = settled(0);
	wl = settled(n - 1);
	post(0, CMD_PING_SYSCALL, g_cpus[n - 1]);
	struct sched_param sp = { 0 };

	if (sched_setscheduler(atomic_load(&p.tid), SCHED_OTHER, &sp) != 0)
		fail("sched_setscheduler(probe, SCHED_OTHER): %s", errname(errno));
	WAIT_FOR(atomic_load(&view_of(0)->departed) == 1,
		 "TASK_DEPARTED of the probe to wake agent %d", g_cpus[0]);
	wait_command(0, "Ping of the last agent via the ghost_run syscall");
	if (n > 1)
		WAIT_FOR(atomic_load(&view_of(n - 1)->wakes) > wl,
			 "agent %d (blocked in the ghost_run syscall) to return after agent %d pinged "
			 "it with the ghost_run syscall",
			 g_cpus[n - 1], g_cpus[0]);
	if (write(p.pipe[1], "x", 1) != 1)
		fail("write to the probe's pipe");
	WAIT_FOR(atomic_load(&p.done), "the probe, back in CFS, to finish");
	pthread_join(p.thread, NULL);

	/* 3. An RPC: a request in shared memory and a futex wake of the agent
	 * process's rpc thread, which pings each agent (a non-agent thread of
	 * the agent process, as lib/base.cc's Notification and agent_test). */
	if (rpc(RPC_PING_AGENTS, 0, 0) != 0)
		fail("RPC kPingAgents");
	check_rtla_on_idle();

	/* 4. A ping from another process must fail. */
	int wctl = openat(dir, "ctl", O_RDWR | O_CLOEXEC);

	if (wctl < 0)
		fail("open ctl O_RDWR in the control process: %s", errname(errno));
	for (int via = 0; via < 2; via++) {
		int r = ghost_run_fd(wctl, via, GHOST_AGENT_GTID, 0, g_cpus[0], 0);

		if (r != -1 || errno != EINVAL)
			fail("a Ping of agent %d from another process via %s returned %d (%s), want "
			     "-1 EINVAL",
			     g_cpus[0], via ? "the ghost_run syscall" : "GHOST_IOC_RUN", r,
			     r ? errname(errno) : "success");
	}
	close(wctl);

	/* 5. A signal to an agent blocked in ghost_run: the handler runs, and
	 * the library's CHECK on the yield's errno (in the agent) holds. */
	wl = settled(n - 1);
	unsigned long sigs = atomic_load(&view_of(n - 1)->signals);

	if (syscall(SYS_tgkill, g_agent_pid, view_of(n - 1)->tid, SIGUSR1) != 0)
		fail("tgkill(agent %d, SIGUSR1): %s", g_cpus[n - 1], errname(errno));
	WAIT_FOR(atomic_load(&view_of(n - 1)->signals) > sigs,
		 "agent %d, blocked in ghost_run, to run its SIGUSR1 handler", g_cpus[n - 1]);
	bool returned = atomic_load(&view_of(n - 1)->wakes) > wl;

	/* Still responsive afterwards. */
	if (rpc(RPC_PING_AGENTS, 0, 0) != 0)
		fail("RPC kPingAgents after the signal");
	info("the signal %s ghost_run return", returned ? "made" : "did not make");

	/* 6. agent_test's GetStatusWordInfo, through an RPC. */
	for (int i = 0; i < n; i++)
		if ((e = (int)rpc(RPC_SW_GET_INFO, GHOST_AGENT, g_cpus[i])) != 0)
			fail("GetStatusWordInfo(GHOST_AGENT, %d): %s", g_cpus[i], errname(e));
	if ((e = (int)rpc(RPC_SW_GET_INFO, GHOST_AGENT, -55)) != EINVAL)
		fail("GetStatusWordInfo(GHOST_AGENT, -55): %s, want EINVAL", errname(e));
	if ((e = (int)rpc(RPC_SW_GET_INFO, GHOST_AGENT, g_nr_possible)) != EINVAL)
		fail("GetStatusWordInfo(GHOST_AGENT, %d): %s, want EINVAL", g_nr_possible, errname(e));
	for (int i = 0; i < n; i++)
		info("agent %d: %lu wakes, %lu messages", g_cpus[i],
		     atomic_load(&view_of(i)->wakes), atomic_load(&view_of(i)->msgs));
	close(ctl);
	close(dir);
}

/* ------------------------------------------------------------------------ */
/* One-task agents (api_test's MessageAgent and SchedAffinityAgent).        */

/* An agent that only sleeps (the satellite agents). */
static void sleeper_loop(struct agent *a)
{
	agent_thread_start(a);
	while (!finished(a)) {
		uint32_t barrier = agent_barrier(a);
		struct message m;

		while (channel_peek(&a->chan, &m)) {
			if (is_task_msg(m.hdr.type))
				fail("a satellite agent got %s", msg_name(m.hdr.type));
			channel_consume(&a->chan, &m);
		}
		local_yield(a, barrier, boosted(a) ? RTLA_ON_IDLE : 0);
	}
}

/* The single task of a one-task agent. */
struct one_task {
	bool live, runnable, oncpu;
	int64_t gtid;
	struct ghost_sw_info sw_info;
	struct ghost_status_word *sw;
	uint32_t seqnum;
	char hist[64];
	int nhist;
};

static void log_msg(int type, int value, int64_t gtid)
{
	int i = atomic_fetch_add(&S->nlog, 1);

	if (i < (int)(sizeof(S->log) / sizeof(S->log[0])))
		S->log[i] = (struct log_entry){ type, value, gtid };
}

/*
 * Handles one task message as api_test's one-task agents do: TASK_NEW
 * first, Advance on every later one, the runnable/oncpu state machine.
 */
static void one_task_msg(struct one_task *t, const struct message *m, int *preempt_was_latched)
{
	int type = m->hdr.type;
	int64_t gtid = msg_gtid(m);

	*preempt_was_latched = -1;
	if (type == MSG_TASK_NEW) {
		struct ghost_msg_payload_task_new p;

		PAYLOAD(p, m);

		if (t->live)
			fail("ASSERT_THAT(task, IsNull()): a second TASK_NEW (gtid %" PRId64 ")", gtid);
		memset(t, 0, sizeof(*t));
		t->live = true;
		t->gtid = gtid;
		t->sw_info = p.sw_info;
		t->sw = status_word(p.sw_info, "TASK_NEW's sw_info");
		t->seqnum = m->hdr.seqnum;
		t->runnable = p.runnable;
		t->hist[t->nhist++] = 'N';
		atomic_fetch_add(&S->live_tasks, 1);
		log_msg(type, p.nice, gtid);
		return;
	}
	if (!t->live || gtid != t->gtid)
		fail("ASSERT_THAT(task, NotNull()): %s for gtid %" PRId64 " with no TASK_NEW",
		     msg_name(type), gtid);
	if (m->hdr.seqnum <= t->seqnum)
		fail("Task::Advance: CHECK_GT(%u, %u) on %s (messages so far: %.*s)", m->hdr.seqnum,
		     t->seqnum, msg_name(type), t->nhist, t->hist);
	t->seqnum = m->hdr.seqnum;
	if (t->nhist < (int)sizeof(t->hist))
		t->hist[t->nhist++] = "DBWNPYXSAOCL"[(type - MSG_TASK_DEAD) % 12];
	switch (type) {
	case MSG_TASK_WAKEUP:
		if (t->runnable || t->oncpu)
			fail("TASK_WAKEUP of a task that is runnable (messages: %.*s)", t->nhist, t->hist);
		t->runnable = true;
		break;
	case MSG_TASK_BLOCKED:
		if (!t->runnable)
			fail("TASK_BLOCKED of a task that is not runnable (messages: %.*s)", t->nhist,
			     t->hist);
		t->runnable = false;
		t->oncpu = false;
		break;
	case MSG_TASK_DEAD:
		if (t->runnable || t->oncpu)
			fail("TASK_DEAD of a task the agent still has runnable%s: a task that exits on "
			     "a CPU must get TASK_BLOCKED first (messages: %.*s)",
			     t->oncpu ? " and on a CPU" : "", t->nhist, t->hist);
		log_msg(type, 0, gtid);
		status_word_free(t->sw_info, "the dead task's status word");
		t->live = false;
		atomic_fetch_sub(&S->live_tasks, 1);
		break;
	case MSG_TASK_PREEMPT: {
		struct ghost_msg_payload_task_preempt p;

		PAYLOAD(p, m);

		if (!t->runnable)
			fail("TASK_PREEMPT of a task that is not runnable (messages: %.*s)", t->nhist,
			     t->hist);
		t->oncpu = false;
		*preempt_was_latched = p.was_latched;
		break;
	}
	case MSG_TASK_YIELD:
		if (!t->runnable)
			fail("TASK_YIELD of a task that is not runnable (messages: %.*s)", t->nhist,
			     t->hist);
		t->oncpu = false;
		break;
	case MSG_TASK_PRIORITY_CHANGED: {
		struct ghost_msg_payload_task_priority_changed p;

		PAYLOAD(p, m);

		log_msg(type, p.nice, gtid);
		break;
	}
	case MSG_TASK_AFFINITY_CHANGED:
	case MSG_TASK_ON_CPU:
		break;
	default:
		/* BasicDispatchScheduler: GHOST_ERROR("Unhandled message type"). */
		fail("%s (type %d) for the task: ghOSt's library has no handler for it (messages: "
		     "%.*s)",
		     msg_name(type), type, t->nhist, t->hist);
	}
}

/* ------------------------------------------------------------------------ */
/* Scenario: priority_changed (api_test GhostTaskPriorityViaSchedGetSetAttr  */
/* and ...ViaGetSetPriority).                                               */

struct sched_attr_v0 {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime;
	uint64_t sched_deadline;
	uint64_t sched_period;
};

static int64_t one_task_rpc(int64_t req, int64_t a0, int64_t a1)
{
	if (req == RPC_COUNT_TASKS)
		return atomic_load(&S->live_tasks);
	return common_rpc(req, a0, a1);
}

static void sched_attr_get(struct sched_attr_v0 *at, const char *when)
{
	memset(at, 0, sizeof(*at));
	if (syscall(SYS_sched_getattr, 0, at, sizeof(*at), 0) != 0)
		fail("sched_getattr %s: %s", when, errname(errno));
}

static void priority_body(struct gthread *g)
{
	struct sched_attr_v0 at;

	S->task_gtid = g->gtid;
	sched_attr_get(&at, "in CFS");
	at.sched_nice = 1;
	if (syscall(SYS_sched_setattr, 0, &at, 0) != 0)
		fail("sched_setattr(nice 1) in CFS: %s", errname(errno));
	gthread_enter(g);
	sched_attr_get(&at, "in ghost");
	if (at.sched_policy != SCHED_GHOST || at.sched_nice != 1)
		fail("sched_getattr in ghost: policy %u nice %d, want SCHED_GHOST and 1",
		     at.sched_policy, at.sched_nice);
	at.sched_nice = 2;
	if (syscall(SYS_sched_setattr, 0, &at, 0) != 0)
		fail("sched_setattr(policy SCHED_GHOST, nice 2) of a task already in ghost: %s "
		     "(ghOSt accepts it and sends TASK_PRIORITY_CHANGED)",
		     errname(errno));
	sched_attr_get(&at, "after the nice change");
	if (at.sched_policy != SCHED_GHOST || at.sched_nice != 2)
		fail("sched_getattr after sched_setattr(nice 2): policy %u nice %d", at.sched_policy,
		     at.sched_nice);
	if (setpriority(PRIO_PROCESS, 0, 3) != 0)
		fail("setpriority(PRIO_PROCESS, 0, 3) of a ghost task: %s", errname(errno));
	errno = 0;
	int prio = getpriority(PRIO_PROCESS, 0);

	if (prio != 3 || errno)
		fail("getpriority after setpriority(3): %d (%s)", prio, errname(errno));
	progress();
}

static void priority_changed_control(void)
{
	int ctl, dir;
	struct gthread g;

	find_active_enclave(&ctl, &dir);
	gthread_start(&g, 0, dir, priority_body);
	gthread_join(&g);
	WAIT_FOR(rpc(RPC_COUNT_TASKS, 0, 0) == 0, "the agent to see the task's TASK_DEAD");
	/* TASK_NEW (nice 1), PRIORITY_CHANGED (2), PRIORITY_CHANGED (3),
	 * TASK_DEAD, in this order, with other messages in between. */
	static const struct {
		int type, value;
	} want[] = {
		{ MSG_TASK_NEW, 1 },
		{ MSG_TASK_PRIORITY_CHANGED, 2 },
		{ MSG_TASK_PRIORITY_CHANGED, 3 },
		{ MSG_TASK_DEAD, 0 },
	};
	int n = atomic_load(&S->nlog);

	if (n != 4)
		fail("the agent logged %d of TASK_NEW/TASK_PRIORITY_CHANGED/TASK_DEAD, want 4 "
		     "(first: %s)",
		     n, n > 0 ? msg_name(S->log[0].type) : "none");
	for (int i = 0; i < 4; i++) {
		if (S->log[i].type != want[i].type || S->log[i].value != want[i].value ||
		    S->log[i].gtid != g.gtid)
			fail("message %d of the task: %s nice %d gtid %" PRId64 ", want %s nice %d "
			     "gtid %" PRId64,
			     i, msg_name(S->log[i].type), S->log[i].value, S->log[i].gtid,
			     msg_name(want[i].type), want[i].value, g.gtid);
	}
	close(ctl);
	close(dir);
}

/* ------------------------------------------------------------------------ */
/* Scenario: latched_affinity (api_test SchedAffinityRace, on 2 CPUs).      */

#define AFFINITY_ROUNDS 12

/*
 * The one-task agent of the first CPU (the others only sleep): api_test's
 * MessageAgent, which runs its task on its own CPU, or, with `affinity`,
 * its SchedAffinityAgent on two CPUs: the task goes alternately to the last
 * CPU (a remote commit, right after which the agent moves the task's
 * affinity off that CPU) and to its own (a local commit). A task caught
 * latched must come back as TASK_PREEMPT (was_latched); in any case the
 * agent must get a message it handles, or the task is stranded.
 */
static void one_task_agent(struct agent *a, bool affinity)
{
	struct one_task t = { 0 };
	int remote = g_cpus[g_ncpus - 1];
	bool next_remote = affinity && g_ncpus > 1, moved = false;

	if (a->idx != 0) {
		sleeper_loop(a);
		return;
	}
	agent_thread_start(a);
	for (;;) {
		uint32_t barrier = agent_barrier(a);
		struct message m;
		int was_latched;

		while (channel_peek(&a->chan, &m)) {
			if (is_task_msg(m.hdr.type)) {
				one_task_msg(&t, &m, &was_latched);
				if (was_latched > 0 && moved)
					atomic_fetch_add(&S->latched_preempts, 1);
				if (m.hdr.type != MSG_TASK_AFFINITY_CHANGED)
					moved = false;
			}
			channel_consume(&a->chan, &m);
			progress();
		}
		if (finished(a) && !t.live)
			break;
		if (boosted(a)) {
			local_yield(a, barrier, RTLA_ON_IDLE);
			continue;
		}
		if (!t.live || !t.runnable || t.oncpu) {
			local_yield(a, barrier, 0);
			continue;
		}
		WAIT_FOR(!(sw_flags(t.sw) & GHOST_SW_TASK_ONCPU),
			 "the task's ONCPU flag to clear before committing it");
		int cpu = next_remote ? remote : a->cpu;

		txn_open(cpu, t.gtid, t.seqnum, barrier, 0, COMMIT_AT_TXN_COMMIT);
		if (!txn_commit(cpu))
			continue;
		t.oncpu = true;
		if (cpu != a->cpu) {
			/* Latched on `cpu`: now take `cpu` out of its affinity. */
			cpu_set_t set;

			atomic_fetch_add(&S->remote_commits, 1);
			CPU_ZERO(&set);
			CPU_SET(a->cpu, &set);
			if (sched_setaffinity(tid_of_gtid(t.gtid), sizeof(set), &set) != 0 &&
			    errno != ESRCH)
				fail("SchedSetAffinity(task, {%d}) after committing it on CPU %d: %s",
				     a->cpu, cpu, errname(errno));
			moved = true;
		}
		if (affinity)
			next_remote = !next_remote;
	}
}

static void message_agent_loop(struct agent *a)
{
	one_task_agent(a, false);
}

static void affinity_agent_loop(struct agent *a)
{
	one_task_agent(a, true);
}

static void affinity_body(struct gthread *g)
{
	S->task_gtid = g->gtid;
	gthread_enter(g);
	for (int i = 0; i < AFFINITY_ROUNDS; i++) {
		/* Back to every enclave CPU (the agent moved it off one). */
		pin_to(0, g_cpus, g_ncpus, "the task's own affinity");
		sched_yield();
		progress();
	}
}

static void latched_affinity_control(void)
{
	int ctl, dir;
	struct gthread g;

	if (g_ncpus < 2)
		fail("latched_affinity needs 2 CPUs, the VM has %d", g_ncpus);
	find_active_enclave(&ctl, &dir);
	gthread_start(&g, 0, dir, affinity_body);
	gthread_join(&g);
	WAIT_FOR(rpc(RPC_COUNT_TASKS, 0, 0) == 0, "the agent to see the task's TASK_DEAD");
	info("%lu remote commits, each followed by an affinity change away from the CPU; "
	     "%lu came back as TASK_PREEMPT with was_latched",
	     atomic_load(&S->remote_commits), atomic_load(&S->latched_preempts));
	close(ctl);
	close(dir);
}

/* ------------------------------------------------------------------------ */
/* Scenario: enclave_files (enclave_test, agent_test FailToBecomeAgent).    */

/* The files whose bytes differ from ghOSt's, reported together. */
static char g_mismatch[1024];

/* `why`: the format ghOSt prints the file with. */
static void expect_bytes(const char *name, const char *want, const char *why)
{
	char buf[256];

	read_all_at(E.dir_fd, name, buf, sizeof(buf));
	if (strcmp(buf, want) != 0 && !strstr(g_mismatch, name)) {
		size_t o = strlen(g_mismatch);

		o += (size_t)snprintf(g_mismatch + o, sizeof(g_mismatch) - o, "%s%s %s",
				      o ? ", " : "bytes unlike ghOSt's: ", name, quoted(buf));
		snprintf(g_mismatch + o, sizeof(g_mismatch) - o, " (ghOSt prints %s: %s)", why,
			 quoted(want));
	}
}

/* enclave_test's CheckSet: cpumask without leading zeros and commas. */
static void check_set(const char *mask, const char *list)
{
	char buf[256];

	read_all_at(E.dir_fd, "cpumask", buf, sizeof(buf));
	char *nl = strchr(buf, '\n'), *p = buf;

	if (nl)
		*nl = 0;
	while (*p == '0' || *p == ',')
		p++;
	if (strcasecmp(p, mask) != 0)
		fail("CheckSet: cpumask reads %s, want %s", quoted(buf), mask);
	read_all_at(E.dir_fd, "cpulist", buf, sizeof(buf));
	nl = strchr(buf, '\n');
	if (nl)
		*nl = 0;
	if (strcasecmp(buf, list) != 0)
		fail("CheckSet: cpulist reads %s, want %s", quoted(buf), list);
}

static void write_cpus(const char *file, const char *value)
{
	int fd = openat(E.dir_fd, file, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail("open %s: %s", file, errname(errno));
	if (write(fd, value, strlen(value)) != (ssize_t)strlen(value))
		fail("write \"%s\" to %s: %s", value, file, errname(errno));
	close(fd);
}

/*
 * want_errno < 0: the write must fail (BadCpus). want_errno > 0
 * (CpuListComma, ghOSt's ABI 91 enclave_test): on a machine with more than
 * 32 CPUs the write succeeds; on a smaller one it may fail, and then only
 * with want_errno (EOVERFLOW: the mask names CPUs the machine does not
 * have, as Linux's bitmap_parse() reports it).
 */
static void expect_write_fails(const char *file, const char *value, int want_errno)
{
	int fd = openat(E.dir_fd, file, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail("open %s: %s", file, errname(errno));
	ssize_t r = write(fd, value, strlen(value));
	int e = errno;

	close(fd);
	if (want_errno < 0 && r != -1)
		fail("BadCpus: write \"%s\" to %s returned %zd, want -1", value, file, r);
	if (want_errno > 0 && sysconf(_SC_NPROCESSORS_ONLN) > 32 && r != (ssize_t)strlen(value))
		fail("CpuListComma: write \"%s\" to cpumask on more than 32 CPUs: %s", value,
		     r == -1 ? errname(e) : "short write");
	if (want_errno > 0 && r == -1 && e != want_errno)
		fail("CpuListComma: write \"%s\" to cpumask failed with %s, want %s (enclave_test)",
		     value, errname(e), errname(want_errno));
	if (want_errno > 0 && r != -1 && r != (ssize_t)strlen(value))
		fail("CpuListComma: write \"%s\" returned %zd", value, r);
}

static void enclave_files(void)
{
	char buf[64];

	E.ctl_fd = make_next_enclave(&E.id);
	E.dir_fd = enclave_directory(E.ctl_fd, E.id);
	/* The bytes ghOSt's kernel prints: ctl "%lu", abi_version "%u\n",
	 * agent_online "%u", the tunables "%d", runnable_timeout "%lld",
	 * status "version %u\nactive %s\nnr_tasks %lu\n". */
	snprintf(buf, sizeof(buf), "%d", E.id);
	expect_bytes("ctl", buf, "%lu");
	expect_bytes("abi_version", "91\n", "%u\\n");
	expect_bytes("agent_online", "0", "%u");
	expect_bytes("runnable_timeout", "0", "%lld");
	expect_bytes("status", "version 91\nactive no\nnr_tasks 0\n", "3 lines");
	static const char *tunables[] = {
		"commit_at_tick",  "deliver_ticks",	 "deliver_cpu_availability",
		"deliver_agent_runnability", "wake_on_waker_cpu", "switchto_disabled",
		"live_dangerously",
	};
	for (size_t i = 0; i < sizeof(tunables) / sizeof(tunables[0]); i++) {
		const char *t = tunables[i];

		expect_bytes(t, "0", "%d");
		write_tunable(t, "1");
		expect_bytes(t, "1", "%d");
		write_tunable(t, "0");
		expect_bytes(t, "0", "%d");
	}

	/* enclave_test's SetCpus, with the masks a 2-CPU machine has. */
	static const char *masks[][2] = { { "1", "0" }, { "2", "1" }, { "3", "0-1" } };

	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		if (strcmp(masks[i][1], "0-1") == 0 && g_ncpus < 2)
			continue;
		if (strcmp(masks[i][1], "1") == 0 && g_ncpus < 2)
			continue;
		write_cpus("cpumask", masks[i][0]);
		check_set(masks[i][0], masks[i][1]);
		int fd = openat(E.dir_fd, "cpulist", O_RDWR | O_CLOEXEC);

		if (fd < 0 || write(fd, "", 0) != 0)
			fail("SetCpus: write(cpulist, \"\", 0) (the reset between masks): %s",
			     errname(errno));
		close(fd);
		check_set("", "");
		write_cpus("cpulist", masks[i][1]);
		check_set(masks[i][0], masks[i][1]);
	}
	/* enclave_test's BadCpus and CpuListComma. */
	expect_write_fails("cpumask", "hello", -1);
	expect_write_fails("cpulist", "-2", -1);
	expect_write_fails("cpulist", "9999999999", -1);
	expect_write_fails("cpumask", "1,84218421", EOVERFLOW);

	/* enclave_test's MmapTxn: a CPU's txn once it joins. */
	write_cpus("cpulist", "");
	int fd = openat(E.dir_fd, "cpu_data", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail("open cpu_data: %s", errname(errno));
	E.cpu_data_size = file_size(fd, "cpu_data");
	E.cpu_data = mmap(NULL, E.cpu_data_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (E.cpu_data == MAP_FAILED)
		fail("mmap cpu_data: %s", errname(errno));
	close(fd);
	int last = g_cpus[g_ncpus - 1];

	snprintf(buf, sizeof(buf), "%d", last);
	write_cpus("cpulist", buf);
	struct ghost_txn *t = txn_of(last);

	if (t->cpu != last || t->version != GHOST_TXN_VERSION ||
	    t->u.sync_group_owner != GHOST_NO_SYNC_GROUP_OWNER || txn_state(t) != GHOST_TXN_COMPLETE)
		fail("MmapTxn: txn of CPU %d: cpu %d version %d sync_group_owner %d state %s", last,
		     t->cpu, t->version, t->u.sync_group_owner, txn_state_name(txn_state(t)));
	munmap(E.cpu_data, E.cpu_data_size);

	/* agent_test's FailToBecomeAgent: no default queue -> ENXIO, and the
	 * caller's affinity and class are as they were. */
	cpu_set_t before, after;

	sched_getaffinity(0, sizeof(before), &before);
	snprintf(buf, sizeof(buf), "become agent %d -1", last);
	if (write(E.ctl_fd, buf, strlen(buf)) != -1 || errno != ENXIO)
		fail("FailToBecomeAgent: \"%s\" with no default queue: %s, want ENXIO", buf,
		     errname(errno));
	sched_getaffinity(0, sizeof(after), &after);
	if (!CPU_EQUAL(&before, &after))
		fail("FailToBecomeAgent: the caller's affinity changed");
	if (sched_getscheduler(0) != SCHED_OTHER)
		fail("FailToBecomeAgent: the caller's policy is %d", sched_getscheduler(0));

	/* api_test's EnteringGhostViaSetSchedulerReturnsBadFdError. */
	struct sched_param sp = { .sched_priority = -2 };

	if (sched_setscheduler(0, SCHED_GHOST, &sp) != -1 || errno != EBADF)
		fail("sched_setscheduler(0, SCHED_GHOST, priority -2): %s, want EBADF",
		     errno ? errname(errno) : "success");

	/* Ghost::TimerFdSettime, as ghOSt's library calls it: a timerfd with a
	 * ghost part for the enclave's CPU is armed; the same call with an
	 * invalid Cpu (cpu -1, flags 0) re-arms it without one; an fd that is
	 * no timerfd gets EBADF. */
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	struct itimerspec its = { .it_value = { .tv_sec = 60 } }, now;

	if (tfd < 0)
		fail("timerfd_create: %s", errname(errno));
	for (int i = 0; i < 3; i++) {
		struct ghost_ioc_timerfd_settime a = {
			.timerfd = i == 2 ? E.ctl_fd : tfd,
			.in_tmr = &its,
			.timerfd_ghost = { .cpu = i == 1 ? -1 : last,
					   .flags = i == 1 ? 0 : TIMERFD_GHOST_ENABLED,
					   .type = 1, .cookie = 2 },
		};
		int r = ioctl(E.ctl_fd, GHOST_IOC_TIMERFD_SETTIME, &a);

		if (i < 2 && r != 0)
			fail("TimerFdSettime(cpu %d): %s", a.timerfd_ghost.cpu, errname(errno));
		if (i == 2 && (r != -1 || errno != EBADF))
			fail("TimerFdSettime of the ctl fd: %s, want EBADF",
			     r == 0 ? "success" : errname(errno));
		if (i < 2 && (timerfd_gettime(tfd, &now) != 0 || now.it_value.tv_sec == 0))
			fail("TimerFdSettime(cpu %d) did not arm the timerfd", a.timerfd_ghost.cpu);
	}
	close(tfd);

	if (write(E.ctl_fd, "destroy", 7) != 7)
		fail("write \"destroy\": %s", errname(errno));
	close(E.ctl_fd);
	close(E.dir_fd);
	E.id = -1;
	/* Last, so that the checks above run whatever the bytes. */
	if (g_mismatch[0])
		fail("%s", g_mismatch);
}

/* ------------------------------------------------------------------------ */

static const struct scenario SCENARIOS[] = {
	{ "agent_start_stop", start_stop_agent_loop, start_stop_after_ready, fifo_rpc,
	  start_stop_control, true },
	{ "schedule_tasks", fifo_agent_loop, NULL, fifo_rpc, schedule_tasks_control, false },
	{ "ping_and_rpc_wake", wake_agent_loop, NULL, wake_rpc, ping_and_rpc_wake_control, false },
	{ "priority_changed", message_agent_loop, NULL, one_task_rpc, priority_changed_control,
	  false },
	{ "latched_affinity", affinity_agent_loop, NULL, one_task_rpc, latched_affinity_control,
	  false },
	{ "enclave_files", NULL, NULL, NULL, NULL, false },
};

int main(int argc, char **argv)
{
	int n = (int)(sizeof(SCENARIOS) / sizeof(SCENARIOS[0]));

	if (argc != 2) {
		fprintf(stderr, "usage: %s SCENARIO\nscenarios:", argv[0]);
		for (int i = 0; i < n; i++)
			fprintf(stderr, " %s", SCENARIOS[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	for (int i = 0; i < n; i++)
		if (strcmp(argv[1], SCENARIOS[i].name) == 0)
			SC = &SCENARIOS[i];
	if (!SC) {
		fprintf(stderr, "%s: unknown scenario %s\n", argv[0], argv[1]);
		return 2;
	}
	g_scenario = SC->name;
	setvbuf(stdout, NULL, _IOLBF, 0);
	int64_t start = now_ns();

	read_topology();
	check_version();
	fifo_init();
	if (SC->control)
		run_control(SC);
	else
		enclave_files();
	printf("PASS %s (%d CPUs, %" PRId64 " ms)\n", SC->name, g_ncpus,
	       (now_ns() - start) / 1000000);
	return 0;
}
