/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Entry points of ghOSt (kernel/sched/ghost/, written in Rust) that the core
 * kernel calls. Glue only: the logic is on the Rust side.
 */
#ifndef _LINUX_GHOST_H
#define _LINUX_GHOST_H

#include <linux/types.h>

struct pid;
struct pid_namespace;
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
#else
static inline void ghost_group_exit(pid_t tgid) { }
#endif

#endif /* _LINUX_GHOST_H */
