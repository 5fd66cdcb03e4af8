// SPDX-License-Identifier: GPL-2.0
/*
 * C accessors for kernel/sched/ghost/ (Rust): static inlines and macros that
 * bindgen cannot turn into callable functions. Glue only; no logic here.
 */

/* The same header list the bindings see (kernel/sched/sched.h needs it). */
#include "../../kernel/sched/ghost_bindings.h"
#include <linux/entry-common.h>

struct rq *rust_helper_ghost_cpu_rq(int cpu)
{
	return cpu_rq(cpu);
}

struct user_namespace *rust_helper_get_user_ns(struct user_namespace *ns)
{
	return get_user_ns(ns);
}

void rust_helper_put_user_ns(struct user_namespace *ns)
{
	put_user_ns(ns);
}

struct kernfs_node *rust_helper_kernfs_create_dir(struct kernfs_node *parent,
						  const char *name, umode_t mode,
						  void *priv)
{
	return kernfs_create_dir(parent, name, mode, priv);
}

bool rust_helper_ghost_cpu_online(unsigned int cpu)
{
	return cpu_online(cpu);
}

bool rust_helper_ghost_cpu_active(unsigned int cpu)
{
	return cpu_active(cpu);
}

/* vmalloc_user() on a given NUMA node (the kernel has no such wrapper). */
void *rust_helper_ghost_vmalloc_user_node(unsigned long size, int node)
{
	return __vmalloc_node_range(size, SHMLBA, VMALLOC_START, VMALLOC_END,
				    GFP_KERNEL | __GFP_ZERO, PAGE_KERNEL,
				    VM_USERMAP, node,
				    __builtin_return_address(0));
}

unsigned long rust_helper_ghost_vma_flags(struct vm_area_struct *vma)
{
	return vma->vm_flags;
}

void rust_helper_ghost_vma_flags_mod(struct vm_area_struct *vma,
				     unsigned long set, unsigned long clear)
{
	vm_flags_mod(vma, set, clear);
}

bool rust_helper_ghost_node_online(int node)
{
	return node >= 0 && node < nr_node_ids && node_online(node);
}

/* The task with pid @nr in the initial pid namespace, with a reference. */
struct task_struct *rust_helper_ghost_get_task_by_gpid(pid_t nr)
{
	struct task_struct *p;

	rcu_read_lock();
	p = find_task_by_pid_ns(nr, &init_pid_ns);
	if (p)
		get_task_struct(p);
	rcu_read_unlock();
	return p;
}

unsigned long rust_helper_ghost_vma_size(struct vm_area_struct *vma)
{
	return vma->vm_end - vma->vm_start;
}

/*
 * task_struct fields, read in C: the Rust binding of task_struct demands
 * 64-byte alignment, which the task_struct cache does not give.
 */
s64 rust_helper_ghost_task_gtid(struct task_struct *p)
{
	return p->gtid;
}

pid_t rust_helper_ghost_task_tgid(struct task_struct *p)
{
	return p->tgid;
}

pid_t rust_helper_ghost_task_pid(struct task_struct *p)
{
	return p->pid;
}

void *rust_helper_ghost_task_ghost(struct task_struct *p)
{
	return p->ghost;
}

void rust_helper_ghost_task_set_ghost(struct task_struct *p, void *g)
{
	p->ghost = g;
}

int rust_helper_ghost_task_policy(struct task_struct *p)
{
	return p->policy;
}

int rust_helper_ghost_task_cpu(struct task_struct *p)
{
	return task_cpu(p);
}

bool rust_helper_ghost_task_queued(struct task_struct *p)
{
	return task_on_rq_queued(p);
}

bool rust_helper_ghost_task_on_cpu(struct task_struct *p)
{
	return READ_ONCE(p->on_cpu);
}

bool rust_helper_ghost_task_dead(struct task_struct *p)
{
	return READ_ONCE(p->__state) == TASK_DEAD;
}

bool rust_helper_ghost_task_state_running(struct task_struct *p)
{
	return READ_ONCE(p->__state) == TASK_RUNNING;
}

bool rust_helper_ghost_task_in_class(struct task_struct *p)
{
	return p->sched_class == &ghost_sched_class;
}

int rust_helper_ghost_task_nice(struct task_struct *p)
{
	return task_nice(p);
}

u64 rust_helper_ghost_task_runtime(struct task_struct *p)
{
	return p->se.sum_exec_runtime;
}

/* CPU time used by @p, up to now if it runs (takes @p's rq lock). */
u64 rust_helper_ghost_task_sched_runtime(struct task_struct *p)
{
	return task_sched_runtime(p);
}

bool rust_helper_ghost_task_migration_disabled(struct task_struct *p)
{
	return is_migration_disabled(p);
}

bool rust_helper_ghost_task_signal_pending(struct task_struct *p)
{
	return signal_pending(p);
}

bool rust_helper_ghost_task_allowed_on(struct task_struct *p, int cpu)
{
	return cpu >= 0 && cpu < nr_cpu_ids && cpumask_test_cpu(cpu, p->cpus_ptr);
}

/* The gtid of @p's parent (0 if it has none in reach). */
s64 rust_helper_ghost_task_parent_gtid(struct task_struct *p)
{
	s64 gtid;

	rcu_read_lock();
	gtid = rcu_dereference(p->real_parent)->gtid;
	rcu_read_unlock();
	return gtid;
}

int rust_helper_ghost_pin_to_cpu(struct task_struct *p, int cpu)
{
	return set_cpus_allowed_ptr(p, cpumask_of(cpu));
}

/* Runqueue accessors. */
struct task_struct *rust_helper_ghost_rq_curr(struct rq *rq)
{
	return rq->curr;
}

/*
 * Runnable tasks of every class on @rq. A CFS task whose dequeue EEVDF
 * delays (DELAY_DEQUEUE) stays counted in rq->nr_running while it sleeps;
 * it is not runnable, so it is left out (as fair.c's cfs_h_nr_delayed()).
 */
unsigned int rust_helper_ghost_rq_nr_running(struct rq *rq)
{
	return rq->nr_running - (rq->cfs.h_nr_queued - rq->cfs.h_nr_runnable);
}

void rust_helper_ghost_add_nr_running(struct rq *rq, unsigned int n)
{
	add_nr_running(rq, n);
}

void rust_helper_ghost_sub_nr_running(struct rq *rq, unsigned int n)
{
	sub_nr_running(rq, n);
}

void rust_helper_ghost_set_exec_start(struct rq *rq, struct task_struct *p)
{
	p->se.exec_start = rq_clock_task(rq);
}

unsigned long rust_helper_ghost_rq_lock_irqsave(struct rq *rq)
{
	unsigned long flags;

	raw_spin_rq_lock_irqsave(rq, flags);
	return flags;
}

void rust_helper_ghost_rq_unlock_irqrestore(struct rq *rq, unsigned long flags)
{
	raw_spin_rq_unlock_irqrestore(rq, flags);
}

void rust_helper_ghost_task_rq_unlock(struct rq *rq, struct task_struct *p,
				      struct rq_flags *rf)
{
	task_rq_unlock(rq, p, rf);
}

void rust_helper_ghost_init_irq_work(struct irq_work *w, void (*fn)(struct irq_work *))
{
	*w = IRQ_WORK_INIT_HARD(fn);
}

/* Raw spinlocks: one lockdep class for all of ghOSt's (this call site). */
void rust_helper_ghost_raw_spin_lock_init(raw_spinlock_t *lock)
{
	raw_spin_lock_init(lock);
}

unsigned long rust_helper_ghost_raw_spin_lock_irqsave(raw_spinlock_t *lock)
{
	unsigned long flags;

	raw_spin_lock_irqsave(lock, flags);
	return flags;
}

void rust_helper_ghost_raw_spin_unlock_irqrestore(raw_spinlock_t *lock,
						 unsigned long flags)
{
	raw_spin_unlock_irqrestore(lock, flags);
}

int rust_helper_ghost_this_cpu(void)
{
	return raw_smp_processor_id();
}

/* Claims @p's ghost state slot for @g; false if it is taken. */
bool rust_helper_ghost_task_claim(struct task_struct *p, void *g)
{
	return cmpxchg(&p->ghost, NULL, g) == NULL;
}

/* Task states for an agent blocking in ghost_run(). */
void rust_helper_ghost_set_current_interruptible(void)
{
	set_current_state(TASK_INTERRUPTIBLE);
}

void rust_helper_ghost_set_current_running(void)
{
	__set_current_state(TASK_RUNNING);
}

bool rust_helper_ghost_task_is_kthread(struct task_struct *p)
{
	return p->flags & PF_KTHREAD;
}

bool rust_helper_ghost_task_exiting(struct task_struct *p)
{
	return p->flags & PF_EXITING;
}

bool rust_helper_ghost_task_is_idle(struct task_struct *p)
{
	return is_idle_task(p);
}

/* The watchdog's work item (sleeps: it scans tasks and destroys enclaves). */
void rust_helper_ghost_init_work(struct work_struct *w, void (*fn)(struct work_struct *))
{
	INIT_WORK(w, fn);
}

bool rust_helper_ghost_queue_unbound_work(struct work_struct *w)
{
	return queue_work(system_unbound_wq, w);
}

/* A WARN with its message and Rust call site (sys::warn's warn_once!). */
void rust_helper_ghost_warn(const char *what, const char *file, int line)
{
	WARN(1, "ghost: %s (%s:%d)\n", what, file, line);
}

/*
 * A class's balance() may drop the rq lock, as the fair class's newidle
 * balance does: unpin and unlock, then lock and repin with the same @rf.
 */
void rust_helper_ghost_balance_unlock(struct rq *rq, struct rq_flags *rf)
{
	rq_unpin_lock(rq, rf);
	raw_spin_rq_unlock(rq);
}

void rust_helper_ghost_balance_relock(struct rq *rq, struct rq_flags *rf)
{
	raw_spin_rq_lock(rq);
	rq_repin_lock(rq, rf);
}

/* An RCU read-side section, for sys/rcu.rs. */
void rust_helper_ghost_rcu_read_lock(void)
{
	rcu_read_lock();
}

void rust_helper_ghost_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

/*
 * ghost_cpu_enclave (kernel/entry/common.c), for sys/rcu.rs: the address of
 * @cpu's entry (NULL for an id that is no possible CPU), and this CPU's
 * entry read with interrupts off, which is an RCU-sched read-side section
 * (NULL, after a lockdep splat, if they are on), and this CPU's id in @cpu.
 */
void __rcu **rust_helper_ghost_cpu_enclave_slot(int cpu)
{
	if (cpu < 0 || cpu >= nr_cpu_ids || !cpu_possible(cpu))
		return NULL;
	return per_cpu_ptr(&ghost_cpu_enclave, cpu);
}

void *rust_helper_ghost_this_cpu_enclave_irqs_off(int *cpu)
{
	bool off = irqs_disabled();

	lockdep_assert_irqs_disabled();
	if (!off)
		return NULL;
	*cpu = raw_smp_processor_id();
	return rcu_dereference_sched_check(*raw_cpu_ptr(&ghost_cpu_enclave), off);
}
