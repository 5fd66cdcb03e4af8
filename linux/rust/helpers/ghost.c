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
