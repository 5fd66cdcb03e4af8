/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Scheduler internals that the Rust crate in kernel/sched/ghost/ sees through
 * bindgen (included from rust/bindings/bindings_helper.h). The includes mirror
 * kernel/sched/build_policy.c so that kernel/sched/sched.h parses the same way
 * it does for the C scheduler classes.
 */
#ifndef _KERNEL_SCHED_GHOST_BINDINGS_H
#define _KERNEL_SCHED_GHOST_BINDINGS_H

#include <linux/sched/clock.h>
#include <linux/sched/cputime.h>
#include <linux/sched/hotplug.h>
#include <linux/sched/isolation.h>
#include <linux/sched/posix-timers.h>
#include <linux/sched/rt.h>
#include <linux/cpuidle.h>
#include <linux/jiffies.h>
#include <linux/kobject.h>
#include <linux/livepatch.h>
#include <linux/mmu_context.h>
#include <linux/pm.h>
#include <linux/psi.h>
#include <linux/rhashtable.h>
#include <linux/seq_buf.h>
#include <linux/seqlock_api.h>
#include <linux/slab.h>
#include <linux/suspend.h>
#include <linux/tsacct_kern.h>
#include <linux/vtime.h>
#include <linux/percpu-rwsem.h>
#include <uapi/linux/sched/types.h>

/* ghostfs sits on kernfs and is mounted below /sys/fs. */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/kernfs.h>
#include <linux/seq_file.h>
#include <linux/sysfs.h>
#include <linux/user_namespace.h>

/* Shared memory with agents, gtids, /proc and sysctl glue. */
#include <linux/anon_inodes.h>
#include <linux/irq_work.h>
#include <linux/sched/task.h>
#include <linux/ghost.h>
#include <linux/mm.h>
#include <linux/nodemask.h>
#include <linux/pid.h>
#include <linux/sysctl.h>
#include <linux/threads.h>
#include <linux/vmalloc.h>

#include "sched.h"

#ifdef __BINDGEN__
/* Macros bindgen cannot evaluate (they cast), as constants; see the same
 * trick in rust/bindings/bindings_helper.h. Only bindgen sees these. */
const fmode_t RUST_CONST_HELPER_GHOST_FMODE_WRITE = FMODE_WRITE;
const int RUST_CONST_HELPER_GHOST_PID_MAX_LIMIT = PID_MAX_LIMIT;
#endif

#endif /* _KERNEL_SCHED_GHOST_BINDINGS_H */
