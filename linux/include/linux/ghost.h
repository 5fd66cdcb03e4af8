/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Entry points of ghOSt (kernel/sched/ghost/, written in Rust) that the core
 * kernel calls. Glue only: the logic is on the Rust side.
 */
#ifndef _LINUX_GHOST_H
#define _LINUX_GHOST_H

#include <linux/types.h>
#include <uapi/linux/ghost.h>

struct itimerspec64;
struct pid;
struct pid_namespace;
struct rq;
struct rq_flags;
struct seq_file;
struct task_struct;

#ifdef CONFIG_SCHED_CLASS_GHOST
/* The gtid of a new task whose pid in the initial namespace is @pid (fork). */
s64 ghost_alloc_gtid(pid_t pid);
/* The last thread of thread group @tgid is exiting (do_exit). */
void ghost_group_exit(pid_t tgid);
/* Shows /proc/<pid>/ghost/gtid. */
int ghost_proc_show_gtid(struct seq_file *m, struct pid_namespace *ns,
			 struct pid *pid, struct task_struct *task);

/*
 * Scheduler hooks (kernel/sched/core.c, syscalls.c).
 *
 * ghost_sched_fork: sched_fork() of @p; clears the ghost state copied from
 *   the parent and, for a SCHED_GHOST parent, joins @p to its enclave.
 *   Nonzero: @p cannot be a ghost task and must fall back to SCHED_NORMAL.
 * ghost_sched_cancel_fork: the fork of @p failed after sched_fork().
 * ghost_setscheduler_check: __sched_setscheduler() of @p to @policy, when
 *   either the old or the new policy is SCHED_GHOST; an errno refuses it.
 * ghost_pnt_prologue: __schedule(), rq locked and pinned by @rf, before
 *   picking; @prev is rq->curr. It may drop the lock for a while, as a
 *   class's balance() does (to wake the CPU's agent for this pick).
 * ghost_prepare_task_switch: rq locked, @prev is leaving for @next.
 * ghost_tick: sched_tick(), rq locked.
 * ghost_cpu_deactivate: sched_cpu_deactivate() of @cpu, before the CPU is
 *   deactivated (its hotplug thread); an errno keeps it online.
 * ghost_agent_picked: rq locked; whether @next, picked on @rq, is its agent
 *   (a ghost_sched_class task that ghost_agent_sched_class, above ext,
 *   picked): sched_ext (kernel/sched/ext.c) treats it as a higher class.
 */
int ghost_sched_fork(struct task_struct *p);
void ghost_sched_cancel_fork(struct task_struct *p);
int ghost_setscheduler_check(struct task_struct *p, int policy, bool user);
void ghost_pnt_prologue(struct rq *rq, struct task_struct *prev,
			struct rq_flags *rf);
void ghost_prepare_task_switch(struct rq *rq, struct task_struct *prev,
			       struct task_struct *next);
void ghost_tick(struct rq *rq);
int ghost_cpu_deactivate(unsigned int cpu);
bool ghost_agent_picked(struct rq *rq, struct task_struct *next);
/*
 * Ghost timerfds (fs/timerfd.c) and the return-to-user commit point.
 *
 * ghost_timerfd_settime: timerfd_settime() of @ufd that also sets its ghost
 *   part @ghost (-EBADF for an fd that is no timerfd).
 * ghost_timerfd_expired: a timerfd whose ghost part is enabled expired
 *   (timer callback: interrupt context); @ghost is a copy of that part.
 * ghost_commit_greedy_txn: exit_to_user_mode_prepare(), interrupts off,
 *   only on a CPU whose ghost_cpu_enclave is set (both declared in
 *   <linux/entry-common.h>).
 */
int ghost_timerfd_settime(int ufd, int flags, const struct itimerspec64 *new,
			  struct itimerspec64 *old,
			  const struct timerfd_ghost *ghost);
void ghost_timerfd_expired(const struct timerfd_ghost *ghost);
void ghost_commit_greedy_txn(void);
/* ghost_run(2): GHOST_IOC_RUN as a system call. */
long ghost_run(s64 gtid, u32 agent_barrier, u32 task_barrier, int run_cpu,
	       int run_flags);
#else
static inline void ghost_group_exit(pid_t tgid) { }
#endif

#endif /* _LINUX_GHOST_H */
