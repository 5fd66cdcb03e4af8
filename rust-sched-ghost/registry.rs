// SPDX-License-Identifier: GPL-2.0

//! The registry of live enclaves: enclave ids, which enclave owns each CPU,
//! lookup by id, and the bookkeeping of creation and destruction (ephemeral
//! enclaves included).
//!
//! Every enclave lives here, keyed by id. ghostfs files carry the enclave id
//! as their key and look the enclave up on each call, so a file of a
//! destroyed enclave can never reach freed memory: the lookup just fails
//! (and kernfs refuses calls on removed nodes anyway). The `ctl` file's
//! ioctls (commits) skip the lookup: each open holds its enclave. Commits
//! read the CPU owners lock-free from [`crate::cpu_enclave`].
//!
//! Owns: the registry (slots and CPU owners, under one spinlock), the lock
//! serializing creators, the count of ephemeral enclaves. It writes each
//! CPU's owner also to [`crate::cpu_enclave`] (published for lock-free
//! readers under RCU; only live enclaves get CPUs, so the two say the
//! same), and a CPU leaving an enclave waits for a grace period before
//! [`set_cpus`] or [`take`] returns.
//!
//! Calls: [`crate::enclave`] (the objects it keeps; each gets the registry as
//! its [`CpuOwners`]), [`crate::sys`] (CPU topology, the agent claim of a CPU
//! in [`crate::sys::rq`], the boot-time slot in [`crate::sys::once`]). The
//! ghostfs directory of an enclave is built by [`crate::ghostfs`], which calls
//! [`begin_create`].

use crate::agent::percpu::GhostRq;
use crate::cpu_data::CpuData;
use crate::cpu_enclave::{owned_by, CPU_ENCLAVE};
use crate::enclave::{CpuOwners, Enclave, EnclaveInit};
use crate::parse::{CpuSet, MAX_CPUS};
use crate::sys::cpu::{cpu_active, cpu_online};
use crate::sys::once::OnceBox;
use crate::sys::rcu::Retired;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::lock::{mutex::MutexBackend, Guard};
use kernel::sync::{Arc, Mutex, SpinLock};

/// Live enclaves at most (creating one more fails with `ENOSPC`).
pub const MAX_ENCLAVES: usize = 1024;

/// The registry of live enclaves.
struct Registry {
    /// [`MAX_ENCLAVES`] slots, allocated at boot (so that nothing allocates
    /// under the registry's spinlock); a destroyed enclave's slot is reused.
    slots: KVec<Option<Arc<Enclave>>>,
    /// The enclave owning each CPU (`nr_cpu_ids` entries): a CPU belongs to
    /// at most one enclave.
    cpu_owner: KVec<Option<u64>>,
}

impl Registry {
    fn find(&self, id: u64) -> Option<&Arc<Enclave>> {
        self.slots.iter().flatten().find(|e| e.id == id)
    }

    /// The CPUs of enclave `id`.
    fn cpus_of(&self, id: u64) -> CpuSet {
        let mut set = CpuSet::new();
        for (cpu, owner) in self.cpu_owner.iter().enumerate() {
            if *owner == Some(id) {
                set.insert(cpu);
            }
        }
        set
    }

    /// Gives enclave `id` exactly the CPUs of `want`, or changes nothing.
    /// Returns the CPUs it did not have before, and the enclave unpublished
    /// from [`crate::cpu_enclave`] for the CPUs it lost (drop it once unlocked).
    /// An enclave no longer live (taken out to be destroyed) only loses
    /// CPUs: `ENODEV` if `want` is not empty.
    ///
    /// With `keep_agents`, a CPU that has an agent cannot leave (`EEXIST`):
    /// its agent would go on running on a CPU the enclave no longer owns.
    /// Destroy passes `false` (it kills the agents). `become agent` claims
    /// the CPU and then checks the owner under this lock, so either it sees
    /// the CPU gone or this sees the claim.
    fn set_cpus(
        &mut self,
        id: u64,
        want: &CpuSet,
        keep_agents: bool,
    ) -> Result<(CpuSet, Option<Retired<Enclave>>)> {
        // Taken out of `slots` already when destroyed: then no CPU joins,
        // so that a CPU's owner is always published in `CPU_ENCLAVE`.
        let enclave = self.find(id).cloned();
        if enclave.is_none() && !want.is_empty() {
            return Err(ENODEV);
        }
        // ghOSt's order of checks: leaving CPUs with an agent, then joining
        // CPUs that are offline, then joining CPUs of another enclave.
        if keep_agents {
            let leaving = self
                .cpu_owner
                .iter()
                .enumerate()
                .filter(|(cpu, owner)| **owner == Some(id) && !want.contains(*cpu));
            for (cpu, _) in leaving {
                let claimed = i32::try_from(cpu)
                    .ok()
                    .and_then(GhostRq::of)
                    .is_some_and(|g| g.agent_claimed());
                if claimed {
                    return Err(EEXIST);
                }
            }
        }
        for cpu in want.iter() {
            match self.cpu_owner.get(cpu) {
                None => return Err(EINVAL),
                Some(Some(owner)) if *owner == id => {}
                Some(_) if !cpu_usable(cpu) => return Err(ENODEV),
                Some(_) => {}
            }
        }
        for cpu in want.iter() {
            if let Some(Some(owner)) = self.cpu_owner.get(cpu) {
                if *owner != id {
                    return Err(EBUSY);
                }
            }
        }
        let mut added = CpuSet::new();
        let mut retired: Option<Retired<Enclave>> = None;
        for (cpu, owner) in self.cpu_owner.iter_mut().enumerate() {
            let Ok(cpu_id) = i32::try_from(cpu) else {
                continue;
            };
            if want.contains(cpu) {
                if *owner != Some(id) {
                    added.insert(cpu);
                    // A CPU without an owner has no published enclave, so
                    // this succeeds (and `enclave` is live: checked above);
                    // a refused count is simply dropped (never published;
                    // `slots` holds another).
                    if let Some(e) = &enclave {
                        let _ = CPU_ENCLAVE.set(cpu_id, e.clone());
                    }
                }
                *owner = Some(id);
            } else if *owner == Some(id) {
                *owner = None;
                if let Some(r) = CPU_ENCLAVE.clear(cpu_id) {
                    match retired.as_mut() {
                        None => retired = Some(r),
                        Some(first) => {
                            // Every CPU leaving here is this enclave's, so
                            // the merge succeeds; if it did not, the count
                            // is leaked (memory-safe) rather than dropped
                            // before a grace period.
                            if let Err(r) = first.merge(r) {
                                core::mem::forget(r);
                            }
                        }
                    }
                }
            }
        }
        Ok((added, retired))
    }

    /// Takes enclave `id` out of the registry and frees its CPUs; also
    /// returns it as unpublished from [`crate::cpu_enclave`] (drop that once
    /// unlocked: it waits for a grace period).
    fn take(&mut self, id: u64) -> Option<(Arc<Enclave>, Option<Retired<Enclave>>)> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|e| e.id == id))?;
        let enclave = slot.take()?;
        // An empty set cannot be refused.
        let retired = self
            .set_cpus(id, &CpuSet::new(), false)
            .ok()
            .and_then(|(_, r)| r);
        if enclave.ephemeral_tgid().is_some() {
            NR_EPHEMERAL.fetch_sub(1, Ordering::Relaxed);
        }
        Some((enclave, retired))
    }
}

/// The number of CPU ids (`nr_cpu_ids`), capped at what a [`CpuSet`] holds.
pub fn nr_cpu_ids() -> usize {
    let n = crate::sys::cpu::nr_cpu_ids();
    usize::try_from(n).map_or(MAX_CPUS, |n| n.min(MAX_CPUS))
}

/// Whether `cpu` is online and active: not on its way down. Checked under
/// the registry lock, which the hotplug teardown takes after the CPU is
/// deactivated (see [`crate::hotplug`]): either the teardown sees the CPU
/// in an enclave and refuses, or this sees it inactive.
fn cpu_usable(cpu: usize) -> bool {
    i32::try_from(cpu).is_ok_and(|c| cpu_online(c) && cpu_active(c))
}

/// The registry and the lock that serializes enclave creation.
///
/// Why a spinlock: agents look their enclave up in file calls (every one but
/// the ctl ioctls), and so does the watchdog. A sleeping lock here could be held
/// by a ghost task that left its CPU inside the critical section (it slept
/// in an allocation, or was preempted at a `cond_resched()`); such a task
/// runs again only when its agent commits it, and an agent blocked on the
/// lock never would: every enclave's agents, the watchdog and `destroy`
/// would hang (found by the fuzzer). Under a spinlock a task cannot leave
/// its CPU. Nothing under it sleeps or allocates with `GFP_KERNEL`.
///
/// Creating an enclave builds kernfs nodes, which sleeps: it runs under the
/// `create` mutex instead (which only creators take) and takes the spinlock
/// just to insert the finished enclave.
#[pin_data]
struct Registries {
    #[pin]
    data: SpinLock<Registry>,
    #[pin]
    create: Mutex<()>,
}

/// The registries, set up once by [`init`] and never freed.
static REGISTRY: OnceBox<Registries> = OnceBox::new();

/// Sets up the registry. Called once at boot, before ghostfs is registered.
pub fn init() -> Result {
    crate::enclave::init();
    crate::cpu_enclave::init()?;
    let mut cpu_owner = KVec::with_capacity(nr_cpu_ids(), GFP_KERNEL)?;
    for _ in 0..nr_cpu_ids() {
        cpu_owner.push(None, GFP_KERNEL)?;
    }
    let mut slots = KVec::with_capacity(MAX_ENCLAVES, GFP_KERNEL)?;
    for _ in 0..MAX_ENCLAVES {
        slots.push(None, GFP_KERNEL)?;
    }
    let registry = Registry { slots, cpu_owner };
    let reg = KBox::pin_init(
        pin_init!(Registries {
            data <- kernel::new_spinlock!(registry),
            create <- kernel::new_mutex!(()),
        }),
        GFP_KERNEL,
    )?;
    REGISTRY.set(reg)
}

fn registries() -> Result<&'static Registries> {
    REGISTRY.get().ok_or(ENODEV)
}

/// The registry (a spinlock: nothing under it may sleep).
fn registry() -> Result<&'static SpinLock<Registry>> {
    Ok(&registries()?.data)
}

impl CpuOwners for Registries {
    fn owns(&self, id: u64, cpu: usize) -> bool {
        self.data.lock().cpu_owner.get(cpu) == Some(&Some(id))
    }

    /// From [`crate::cpu_enclave`], without the lock (every commit asks):
    /// a snapshot as good as the locked one, which is stale once the lock
    /// drops.
    fn cpus_of(&self, e: &Enclave) -> CpuSet {
        let mut set = CpuSet::new();
        for cpu in 0..nr_cpu_ids() {
            if i32::try_from(cpu).is_ok_and(|c| owned_by(c, e)) {
                set.insert(cpu);
            }
        }
        set
    }
}

/// The enclave with this id, if it is alive.
pub fn find(id: u64) -> Option<Arc<Enclave>> {
    registry().ok()?.lock().find(id).cloned()
}

/// The CPUs of enclave `id`. May sleep.
pub fn cpus_of(id: u64) -> Result<CpuSet> {
    Ok(registry()?.lock().cpus_of(id))
}

/// Gives enclave `id` exactly the CPUs of `want`, or changes nothing
/// (a `cpulist`/`cpumask` write): `EEXIST` if a leaving CPU has an agent,
/// `EINVAL` for a CPU id past `nr_cpu_ids`, `ENODEV` for a joining CPU that
/// is not online and active, `EBUSY` for one of another enclave, `ENODEV`
/// for any CPU once the enclave is being destroyed. Returns the CPUs it did
/// not have before.
pub fn set_cpus(id: u64, want: &CpuSet) -> Result<CpuSet> {
    let regs = registries()?;
    let (added, retired) = {
        let mut reg = regs.data.lock();
        reg.set_cpus(id, want, true)?
    };
    // Unlocked: waits for a grace period if CPUs left.
    drop(retired);
    Ok(added)
}

/// A creation in progress: holds the creators' lock, so the id checked by
/// [`begin_create`] stays free and a slot stays free until
/// [`Creating::insert`].
pub struct Creating {
    _lock: Guard<'static, (), MutexBackend>,
    registries: &'static Registries,
}

/// Starts creating enclave `id`: `EEXIST` if it is alive, `ENOSPC` if
/// [`MAX_ENCLAVES`] are. Creators are serialized until the returned
/// [`Creating`] is inserted or dropped. May sleep.
pub fn begin_create(id: u64) -> Result<Creating> {
    let registries = registries()?;
    let lock = registries.create.lock();
    if find(id).is_some() {
        return Err(EEXIST);
    }
    // A free slot must exist (they are all allocated at boot).
    if registries.data.lock().slots.iter().all(|s| s.is_some()) {
        return Err(ENOSPC);
    }
    Ok(Creating {
        _lock: lock,
        registries,
    })
}

impl Creating {
    /// Builds the enclave object (see [`Enclave::new`]), answering its CPU
    /// questions from this registry. May sleep.
    pub fn build(&self, init: EnclaveInit) -> Result<Arc<Enclave>> {
        let cpu_data = CpuData::new(nr_cpu_ids())?;
        Enclave::new(init, cpu_data, self.registries)
    }

    /// Makes `enclave` live: lookups find it from now on.
    pub fn insert(self, enclave: Arc<Enclave>) -> Result {
        let ephemeral = enclave.ephemeral_tgid().is_some();
        // Only creators fill slots, and they are serialized: the free slot
        // seen by `begin_create` is still free.
        let refused = {
            let mut reg = self.registries.data.lock();
            match reg.slots.iter_mut().find(|s| s.is_none()) {
                Some(free) => {
                    *free = Some(enclave);
                    None
                }
                None => Some(enclave),
            }
        };
        if let Some(enclave) = refused {
            // Freed outside the spinlock (freeing its memory may sleep).
            drop(enclave);
            return Err(ENOSPC);
        }
        if ephemeral {
            NR_EPHEMERAL.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Live ephemeral enclaves: while 0, a process exit costs one atomic load.
static NR_EPHEMERAL: AtomicUsize = AtomicUsize::new(0);

/// Whether `cpu` belongs to an enclave. May sleep.
pub fn cpu_in_enclave(cpu: usize) -> bool {
    registry().is_ok_and(|r| r.lock().cpu_owner.get(cpu).is_some_and(|o| o.is_some()))
}

/// The enclaves the watchdog looks at: with a `runnable_timeout`, or
/// orphaned. May sleep.
pub fn watched() -> KVec<Arc<Enclave>> {
    let mut out = KVec::new();
    let Ok(r) = registry() else {
        return out;
    };
    // Room for every live enclave, allocated before the spinlock.
    let live = r.lock().slots.iter().flatten().count();
    if out.reserve(live, GFP_KERNEL).is_err() {
        // Out of memory: the next check sees them.
        return out;
    }
    for e in r.lock().slots.iter().flatten() {
        if e.runnable_timeout_ns() > 0 || e.orphaned() {
            // Enclaves created since the count may not fit: the next check
            // sees them. Within capacity, `push` does not allocate.
            if out.len() < out.capacity() {
                let _ = out.push(e.clone(), GFP_ATOMIC);
            }
        }
    }
    out
}

/// Takes the enclave `id` out of the registry: new lookups fail and its
/// CPUs are free again. Finish with [`destroy_taken`].
pub fn take(id: u64) -> Option<Arc<Enclave>> {
    let regs = registries().ok()?;
    let taken = regs.data.lock().take(id);
    let (enclave, retired) = taken?;
    // Unlocked: waits for a grace period, so no return-to-user commit
    // still uses the enclave when its destroy starts.
    drop(retired);
    Some(enclave)
}

/// Destroys an enclave [`take`] returned, outside any callback of its
/// files: every task back to CFS, agents killed, directory removed.
/// Process context; sleeps.
pub fn destroy_taken(e: Arc<Enclave>) {
    crate::destroy::shutdown(&e);
    e.dir().remove();
}

/// The last thread of thread group `tgid` is exiting: destroy the ephemeral
/// enclaves it created. Process context; may sleep.
pub fn owner_exited(tgid: i32) {
    if NR_EPHEMERAL.load(Ordering::Relaxed) == 0 {
        return;
    }
    let Ok(regs) = registries() else {
        return;
    };
    loop {
        let enclave = {
            let mut reg = regs.data.lock();
            let id = reg
                .slots
                .iter()
                .flatten()
                .find(|e| e.ephemeral_tgid() == Some(tgid))
                .map(|e| e.id);
            let taken = id.and_then(|id| reg.take(id));
            match taken {
                Some(taken) => taken,
                None => return,
            }
        };
        let (enclave, retired) = enclave;
        // Unlocked: waits for a grace period (see [`take`]).
        drop(retired);
        let id = enclave.id;
        destroy_taken(enclave);
        pr_info!(
            "enclave_{} destroyed: its ephemeral owner (tgid {}) exited\n",
            id,
            tgid
        );
    }
}
