// SPDX-License-Identifier: GPL-2.0
/*
 * C accessors for kernel/sched/ghost/ (Rust): static inlines and macros that
 * bindgen cannot turn into callable functions. Glue only; no logic here.
 */

/* The same header list the bindings see (kernel/sched/sched.h needs it). */
#include "../../kernel/sched/ghost_bindings.h"

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
