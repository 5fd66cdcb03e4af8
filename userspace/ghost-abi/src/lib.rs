//! ghOSt ABI 91: the data layouts and constants shared by the ghost-rs kernel
//! and ghOSt agents.
//!
//! This crate is a hand-written mirror of the kernel's uapi header
//! `linux/include/uapi/linux/ghost.h`, which is the single source of truth.
//! The `layout` integration test compiles that header with the C compiler and
//! checks every size, alignment, field offset and constant below against it.
//!
//! Conventions:
//! - C `struct ghost_foo` is `GhostFoo` here (e.g. [`GhostTxn`]); C constants keep their names
//!   (`__NR_ghost_run` is [`NR_GHOST_RUN`], `_MSG_TASK_FIRST` is
//!   [`MSG_TASK_FIRST`]).
//! - A C field named `type` is `type_`.
//! - Times are nanoseconds. Boolean message fields are one byte, 0 or 1.
//! - Pointer-valued ioctl fields are `u64` user addresses.
//! - Messages in a queue ring are only 4-byte aligned: read `u64` payload
//!   fields there with unaligned loads (`core::ptr::read_unaligned`).
//! - Fields that the kernel and agents access concurrently (`GhostTxn::state`,
//!   `GhostStatusWord::flags`, ring `head`/`tail`, ...) are plain integers
//!   here; access them through atomics (e.g. `AtomicI32::from_ptr`) on the
//!   shared mapping.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::mem::size_of;

// ---------------------------------------------------------------------------
// Versions, policy, filesystem, syscall.
// ---------------------------------------------------------------------------

/// ABI version implemented (C `GHOST_VERSION`); `/sys/fs/ghost/version` lists it.
pub const GHOST_VERSION: u32 = 91;

/// Scheduling policy number of the ghost class (C `SCHED_GHOST`).
pub const SCHED_GHOST: i32 = 18;

/// `f_type` of the ghostfs filesystem mounted on `/sys/fs/ghost` (C `GHOST_SUPER_MAGIC`).
pub const GHOST_SUPER_MAGIC: u32 = 0xBAD1_DEA2;

/// `x86_64` number of the `ghost_run` syscall (C `__NR_ghost_run`): the
/// `GHOST_IOC_RUN` operation with a [`GhostIocRun`]'s fields as arguments.
#[cfg(target_arch = "x86_64")]
pub const NR_GHOST_RUN: i64 = 463;

// ---------------------------------------------------------------------------
// Message sources, wakeup CPUs, status word locations, special gtids.
// ---------------------------------------------------------------------------

/// `enum ghost_type` value: an agent (the source `arg` is a CPU).
pub const GHOST_AGENT: u32 = 0;
/// `enum ghost_type` value: a ghost task (the source `arg` is a gtid).
pub const GHOST_TASK: u32 = 1;

/// A message source: a task (by gtid) or an agent (by CPU). C `struct ghost_msg_src`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgSrc {
    /// [`GHOST_AGENT`] or [`GHOST_TASK`] (C `enum ghost_type`, 4 bytes).
    pub type_: u32,
    /// gtid for [`GHOST_TASK`], CPU number for [`GHOST_AGENT`].
    pub arg: u64,
}

/// Maximum number of wakeup CPUs of a queue (C `GHOST_MAX_WINFO`).
pub const GHOST_MAX_WINFO: usize = 2;

/// A CPU whose agent is woken when a queue gets a message. C `struct ghost_agent_wakeup`, 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostAgentWakeup {
    /// CPU whose agent is woken.
    pub cpu: i32,
    /// Wakeup priority; must be 0.
    pub prio: i32,
}

/// Location of a status word. C `struct ghost_sw_info`, 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GhostSwInfo {
    /// Status word region id (`sw_regions/sw_<id>`).
    pub id: u32,
    /// Index in the region's status word array.
    pub index: u32,
}

/// Special gtid: no task (C `GHOST_NULL_GTID`); in a txn, "run nothing".
pub const GHOST_NULL_GTID: i64 = 0;
/// Special gtid: the CPU's agent (C `GHOST_AGENT_GTID`); used for pings.
pub const GHOST_AGENT_GTID: i64 = -1;
/// Special gtid: the idle task (C `GHOST_IDLE_GTID`).
pub const GHOST_IDLE_GTID: i64 = -2;

/// Version of [`GhostQueueHeader`] (C `GHOST_QUEUE_VERSION`).
pub const GHOST_QUEUE_VERSION: u32 = 0;
/// Version of [`GhostSwRegionHeader`] (C `GHOST_SW_REGION_VERSION`).
pub const GHOST_SW_REGION_VERSION: u32 = 0;
/// Version of [`GhostTxn`] (C `GHOST_TXN_VERSION`).
pub const GHOST_TXN_VERSION: i32 = 0;

/// Maximum number of 8-byte slots in a queue ring, a power of two (C `GHOST_MAX_QUEUE_ELEMS`).
pub const GHOST_MAX_QUEUE_ELEMS: u32 = 65536;

// ---------------------------------------------------------------------------
// Queues.
// ---------------------------------------------------------------------------

/// Header at offset 0 of a queue mapping. C `struct ghost_queue_header`, 64 bytes.
///
/// The [`GhostRing`] is at byte offset `start`; its `msgs` array has `nelems`
/// 8-byte slots.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostQueueHeader {
    /// [`GHOST_QUEUE_VERSION`].
    pub version: u32,
    /// Byte offset of the [`GhostRing`] from the start of the mapping (64).
    pub start: u32,
    /// Number of slots in the ring (a power of two).
    pub nelems: u32,
}

/// Message header; the payload follows it. C `struct ghost_msg`, 8 bytes.
///
/// A message of `length` bytes takes `ceil(length / 8)` ring slots.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsg {
    /// Message type, one of the `MSG_*` constants.
    pub type_: u16,
    /// Length in bytes, including this 8-byte header.
    pub length: u16,
    /// The source's barrier after this message (task or agent barrier).
    pub seqnum: u32,
    /// Start of the type-specific payload (`GhostMsgPayload*`).
    pub payload: [u32; 0],
}

/// The queue ring at `GhostQueueHeader::start`. C `struct ghost_ring`, 12 bytes plus the slots.
///
/// `head` and `tail` are free-running slot counters; the slot index is
/// `counter & (nelems - 1)`. The kernel advances `head`, the agent `tail`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostRing {
    /// Producer (kernel) counter, in slots.
    pub head: u32,
    /// Consumer (agent) counter, in slots.
    pub tail: u32,
    /// Number of messages dropped because the ring was full.
    pub overflow: u32,
    /// The `nelems` message slots.
    pub msgs: [GhostMsg; 0],
}

// ---------------------------------------------------------------------------
// Message types.
// ---------------------------------------------------------------------------

/// First task message type (C `_MSG_TASK_FIRST`).
pub const MSG_TASK_FIRST: u16 = 64;
/// Last task message type (C `_MSG_TASK_LAST`).
pub const MSG_TASK_LAST: u16 = 127;
/// First CPU message type (C `_MSG_CPU_FIRST`).
pub const MSG_CPU_FIRST: u16 = 128;
/// Last CPU message type (C `_MSG_CPU_LAST`).
pub const MSG_CPU_LAST: u16 = 191;

/// Ring padding up to the end of the ring; no payload.
pub const MSG_NOP: u16 = 0;
/// A task exited ([`GhostMsgPayloadTaskDead`]).
pub const MSG_TASK_DEAD: u16 = 64;
/// A task blocked ([`GhostMsgPayloadTaskBlocked`]).
pub const MSG_TASK_BLOCKED: u16 = 65;
/// A task became runnable ([`GhostMsgPayloadTaskWakeup`]).
pub const MSG_TASK_WAKEUP: u16 = 66;
/// A task entered ghost or was discovered ([`GhostMsgPayloadTaskNew`]).
pub const MSG_TASK_NEW: u16 = 67;
/// A running or latched task lost its CPU ([`GhostMsgPayloadTaskPreempt`]).
pub const MSG_TASK_PREEMPT: u16 = 68;
/// A task yielded ([`GhostMsgPayloadTaskYield`]).
pub const MSG_TASK_YIELD: u16 = 69;
/// A task left ghost ([`GhostMsgPayloadTaskDeparted`]).
pub const MSG_TASK_DEPARTED: u16 = 70;
/// A task switched directly to another task ([`GhostMsgPayloadTaskSwitchto`]).
pub const MSG_TASK_SWITCHTO: u16 = 71;
/// A task's CPU affinity changed ([`GhostMsgPayloadTaskAffinityChanged`]).
pub const MSG_TASK_AFFINITY_CHANGED: u16 = 72;
/// A task committed with [`SEND_TASK_ON_CPU`] got on its CPU ([`GhostMsgPayloadTaskOnCpu`]).
pub const MSG_TASK_ON_CPU: u16 = 73;
/// A task's nice value changed ([`GhostMsgPayloadTaskPriorityChanged`]).
pub const MSG_TASK_PRIORITY_CHANGED: u16 = 74;
/// A task a BPF program latched could not be run ([`GhostMsgPayloadTaskLatchFailure`]; never sent by ghost-rs).
pub const MSG_TASK_LATCH_FAILURE: u16 = 75;
/// A timer tick on a CPU ([`GhostMsgPayloadCpuTick`]).
pub const MSG_CPU_TICK: u16 = 128;
/// A ghost timerfd expired ([`GhostMsgPayloadTimer`]).
pub const MSG_CPU_TIMER_EXPIRED: u16 = 129;
/// A CPU left idle for a non-ghost task ([`GhostMsgPayloadCpuNotIdle`]).
pub const MSG_CPU_NOT_IDLE: u16 = 130;
/// No higher-class work on a CPU any more ([`GhostMsgPayloadCpuAvailable`]).
pub const MSG_CPU_AVAILABLE: u16 = 131;
/// A higher class took a CPU ([`GhostMsgPayloadCpuBusy`]).
pub const MSG_CPU_BUSY: u16 = 132;
/// A CPU's agent blocked in `ghost_run` ([`GhostMsgPayloadAgentBlocked`]).
pub const MSG_CPU_AGENT_BLOCKED: u16 = 133;
/// A CPU's agent was woken ([`GhostMsgPayloadAgentWakeup`]).
pub const MSG_CPU_AGENT_WAKEUP: u16 = 134;

// ---------------------------------------------------------------------------
// Message payloads.
// ---------------------------------------------------------------------------

/// Payload of [`MSG_TASK_NEW`]. C `struct ghost_msg_payload_task_new`, 48 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskNew {
    /// The task's gtid.
    pub gtid: u64,
    /// gtid of the task's parent.
    pub parent_gtid: u64,
    /// Cumulative CPU time, ns.
    pub runtime: u64,
    /// 1 if the task is runnable.
    pub runnable: u16,
    /// Nice value, -20..19.
    pub nice: i32,
    /// The task's status word.
    pub sw_info: GhostSwInfo,
    /// Opaque to the kernel (set by BPF).
    pub agent_data: u64,
}

/// Payload of [`MSG_TASK_PREEMPT`]. C `struct ghost_msg_payload_task_preempt`, 40 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskPreempt {
    /// The task's gtid.
    pub gtid: u64,
    /// Cumulative CPU time, ns.
    pub runtime: u64,
    /// The CPU's sequence number.
    pub cpu_seqnum: u64,
    /// Opaque to the kernel (set by BPF).
    pub agent_data: u64,
    /// CPU the task was preempted on.
    pub cpu: i32,
    /// Bool: preempted inside a switchto chain.
    pub from_switchto: u8,
    /// Bool: the task was latched, not running.
    pub was_latched: u8,
}

/// Payload of [`MSG_TASK_YIELD`]. C `struct ghost_msg_payload_task_yield`, 40 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskYield {
    /// The task's gtid.
    pub gtid: u64,
    /// Cumulative CPU time, ns.
    pub runtime: u64,
    /// The CPU's sequence number.
    pub cpu_seqnum: u64,
    /// Opaque to the kernel (set by BPF).
    pub agent_data: u64,
    /// CPU the task yielded on.
    pub cpu: i32,
    /// Bool: yielded inside a switchto chain.
    pub from_switchto: u8,
}

/// Payload of [`MSG_TASK_BLOCKED`]. C `struct ghost_msg_payload_task_blocked`, 32 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskBlocked {
    /// The task's gtid.
    pub gtid: u64,
    /// Cumulative CPU time, ns.
    pub runtime: u64,
    /// The CPU's sequence number.
    pub cpu_seqnum: u64,
    /// CPU the task blocked on.
    pub cpu: i32,
    /// Bool: blocked inside a switchto chain.
    pub from_switchto: u8,
}

/// Payload of [`MSG_TASK_DEAD`]. C `struct ghost_msg_payload_task_dead`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskDead {
    /// The task's gtid.
    pub gtid: u64,
    /// CPU the task died on.
    pub cpu: i32,
}

/// Payload of [`MSG_TASK_DEPARTED`]. C `struct ghost_msg_payload_task_departed`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskDeparted {
    /// The task's gtid.
    pub gtid: u64,
    /// The CPU's sequence number.
    pub cpu_seqnum: u64,
    /// CPU of the task.
    pub cpu: i32,
    /// Bool: departed inside a switchto chain.
    pub from_switchto: u8,
    /// Bool: the task was running when it left.
    pub was_current: u8,
}

/// Payload of [`MSG_TASK_WAKEUP`]. C `struct ghost_msg_payload_task_wakeup`, 32 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskWakeup {
    /// The task's gtid.
    pub gtid: u64,
    /// Opaque to the kernel (set by BPF).
    pub agent_data: u64,
    /// Bool: the wakeup may be handled lazily.
    pub deferrable: u8,
    /// CPU the task last ran on.
    pub last_ran_cpu: i32,
    /// CPU the task was woken up on.
    pub wake_up_cpu: i32,
    /// CPU of the waker.
    pub waker_cpu: i32,
}

/// Payload of [`MSG_TASK_SWITCHTO`]. C `struct ghost_msg_payload_task_switchto`, 32 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskSwitchto {
    /// The task's gtid.
    pub gtid: u64,
    /// Cumulative CPU time, ns.
    pub runtime: u64,
    /// The CPU's sequence number.
    pub cpu_seqnum: u64,
    /// CPU of the switch.
    pub cpu: i32,
}

/// Payload of [`MSG_TASK_AFFINITY_CHANGED`]. C `struct ghost_msg_payload_task_affinity_changed`, 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskAffinityChanged {
    /// The task's gtid.
    pub gtid: u64,
}

/// Payload of [`MSG_TASK_PRIORITY_CHANGED`]. C `struct ghost_msg_payload_task_priority_changed`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskPriorityChanged {
    /// The task's gtid.
    pub gtid: u64,
    /// New nice value, -20..19.
    pub nice: i32,
}

/// Payload of [`MSG_TASK_ON_CPU`]. C `struct ghost_msg_payload_task_on_cpu`, 32 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskOnCpu {
    /// The task's gtid.
    pub gtid: u64,
    /// Time (ktime ns) when the transaction committed.
    pub commit_time: u64,
    /// The CPU's sequence number.
    pub cpu_seqnum: u64,
    /// CPU the task runs on.
    pub cpu: i32,
}

/// Payload of [`MSG_TASK_LATCH_FAILURE`]. C `struct ghost_msg_payload_task_latch_failure`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTaskLatchFailure {
    /// The task's gtid.
    pub gtid: u64,
    /// Positive errno value.
    pub errno: i32,
}

/// Payload of [`MSG_CPU_TICK`]. C `struct ghost_msg_payload_cpu_tick`, 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadCpuTick {
    /// CPU of the tick.
    pub cpu: i32,
    /// 1 if the agent was running at the tick.
    pub is_agent: i32,
}

/// Payload of [`MSG_CPU_TIMER_EXPIRED`]. C `struct ghost_msg_payload_timer`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadTimer {
    /// [`TimerfdGhost::cpu`] of the timer.
    pub cpu: i32,
    /// [`TimerfdGhost::type_`] of the timer.
    pub type_: u64,
    /// [`TimerfdGhost::cookie`] of the timer.
    pub cookie: u64,
}

/// Payload of [`MSG_CPU_NOT_IDLE`]. C `struct ghost_msg_payload_cpu_not_idle`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadCpuNotIdle {
    /// The CPU.
    pub cpu: i32,
    /// gtid of the task that got the CPU.
    pub next_gtid: u64,
}

/// Payload of [`MSG_CPU_AVAILABLE`]. C `struct ghost_msg_payload_cpu_available`, 4 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadCpuAvailable {
    /// The CPU.
    pub cpu: i32,
}

/// Payload of [`MSG_CPU_BUSY`]. C `struct ghost_msg_payload_cpu_busy`, 4 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadCpuBusy {
    /// The CPU.
    pub cpu: i32,
}

/// Payload of [`MSG_CPU_AGENT_BLOCKED`]. C `struct ghost_msg_payload_agent_blocked`, 4 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadAgentBlocked {
    /// The CPU.
    pub cpu: i32,
}

/// Payload of [`MSG_CPU_AGENT_WAKEUP`]. C `struct ghost_msg_payload_agent_wakeup`, 4 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostMsgPayloadAgentWakeup {
    /// The CPU.
    pub cpu: i32,
}

// ---------------------------------------------------------------------------
// BPF (not part of ghost-rs; ABI 91's layouts, for completeness).
// ---------------------------------------------------------------------------

/// The payload part of a [`BpfGhostMsg`] (an anonymous union in C).
#[repr(C)]
#[derive(Clone, Copy)]
pub union BpfGhostMsgPayload {
    /// [`MSG_TASK_DEAD`].
    pub dead: GhostMsgPayloadTaskDead,
    /// [`MSG_TASK_BLOCKED`].
    pub blocked: GhostMsgPayloadTaskBlocked,
    /// [`MSG_TASK_WAKEUP`].
    pub wakeup: GhostMsgPayloadTaskWakeup,
    /// [`MSG_TASK_NEW`].
    pub newt: GhostMsgPayloadTaskNew,
    /// [`MSG_TASK_PREEMPT`].
    pub preempt: GhostMsgPayloadTaskPreempt,
    /// [`MSG_TASK_YIELD`].
    pub yield_: GhostMsgPayloadTaskYield,
    /// [`MSG_TASK_DEPARTED`].
    pub departed: GhostMsgPayloadTaskDeparted,
    /// [`MSG_TASK_SWITCHTO`].
    pub switchto: GhostMsgPayloadTaskSwitchto,
    /// [`MSG_TASK_AFFINITY_CHANGED`].
    pub affinity: GhostMsgPayloadTaskAffinityChanged,
    /// [`MSG_TASK_PRIORITY_CHANGED`].
    pub priority: GhostMsgPayloadTaskPriorityChanged,
    /// [`MSG_TASK_ON_CPU`].
    pub on_cpu: GhostMsgPayloadTaskOnCpu,
    /// [`MSG_TASK_LATCH_FAILURE`].
    pub latch_failure: GhostMsgPayloadTaskLatchFailure,
    /// [`MSG_CPU_TICK`].
    pub cpu_tick: GhostMsgPayloadCpuTick,
    /// [`MSG_CPU_TIMER_EXPIRED`].
    pub timer: GhostMsgPayloadTimer,
    /// [`MSG_CPU_NOT_IDLE`].
    pub cpu_not_idle: GhostMsgPayloadCpuNotIdle,
    /// [`MSG_CPU_AVAILABLE`].
    pub cpu_available: GhostMsgPayloadCpuAvailable,
    /// [`MSG_CPU_BUSY`].
    pub cpu_busy: GhostMsgPayloadCpuBusy,
    /// [`MSG_CPU_AGENT_BLOCKED`].
    pub agent_blocked: GhostMsgPayloadAgentBlocked,
    /// [`MSG_CPU_AGENT_WAKEUP`].
    pub agent_wakeup: GhostMsgPayloadAgentWakeup,
}

/// What a BPF message program sees. C `struct bpf_ghost_msg`, 64 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BpfGhostMsg {
    /// The payload, by message type.
    pub payload: BpfGhostMsgPayload,
    /// `MSG_*`.
    pub type_: u16,
    /// The message's seqnum.
    pub seqnum: u32,
    /// CPU whose agent to wake, or `BPF_GHOST_MSG_*`.
    pub pref_cpu: i32,
}

/// [`BpfGhostMsg::pref_cpu`]: no preference.
pub const BPF_GHOST_MSG_NO_WAKEUP_PREF: i32 = -1;
/// [`BpfGhostMsg::pref_cpu`]: wake no agent.
pub const BPF_GHOST_MSG_SKIP_AGENT_WAKE: i32 = -2;

/// The context of a BPF pick-next-task program. C `struct bpf_ghost_sched`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BpfGhostSched {
    /// There is an agent; it can run if poked.
    pub agent_on_rq: u8,
    /// There is an agent; it will run.
    pub agent_runnable: u8,
    /// Another class probably wants the CPU.
    pub might_yield: u8,
    /// Set to keep the CPU from idling.
    pub dont_idle: u8,
    /// Set to force prev off the CPU.
    pub must_resched: u8,
    /// What runs next unless the program acts.
    pub next_gtid: u64,
}

/// The context of a BPF select_rq program. C `struct bpf_ghost_select_rq`, 32 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BpfGhostSelectRq {
    /// The waking task.
    pub gtid: u64,
    /// Its CPU.
    pub task_cpu: u32,
    /// The waker's CPU.
    pub waker_cpu: u32,
    /// Scheduling-domain flag.
    pub sd_flag: u32,
    /// Wakeup flags.
    pub wake_flags: u32,
    /// Skip the remote wakeup queue.
    pub skip_ttwu_queue: u8,
}

/// The context of a BPF halt-poll program. C `struct bpf_ghost_halt_poll`, 4 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BpfGhostHaltPoll {
    /// The kind of halt poll.
    pub type_: u32,
}

/// The most CPUs a BPF sync commit covers.
pub const BPF_SYNC_COMMIT_MAX_CPUS: usize = 2;

/// Arguments of a BPF sync commit. C `struct bpf_sync_commit_args`, 56 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BpfSyncCommitArgs {
    /// The CPUs (-1: unused slot).
    pub cpus: [i32; BPF_SYNC_COMMIT_MAX_CPUS],
    /// The task of each CPU.
    pub gtids: [u64; BPF_SYNC_COMMIT_MAX_CPUS],
    /// Each task's barrier.
    pub task_barriers: [u32; BPF_SYNC_COMMIT_MAX_CPUS],
    /// Each commit's run flags.
    pub run_flags: [i32; BPF_SYNC_COMMIT_MAX_CPUS],
    /// Each commit's commit flags.
    pub commit_flags: [i32; BPF_SYNC_COMMIT_MAX_CPUS],
}

/// Resched flag (BPF): whatever runs.
pub const RESCHED_ANY_CLASS: i32 = 1 << 0;
/// Resched flag (BPF): if a ghost task runs.
pub const RESCHED_GHOST_CLASS: i32 = 1 << 1;
/// Resched flag (BPF): if the idle task runs.
pub const RESCHED_IDLE_CLASS: i32 = 1 << 2;
/// Resched flag (BPF): if neither runs.
pub const RESCHED_OTHER_CLASS: i32 = 1 << 3;
/// Resched flag (BPF): also set must_resched.
pub const SET_MUST_RESCHED: i32 = 1 << 4;
/// Resched flag (BPF): also wake the agent.
pub const WAKE_AGENT: i32 = 1 << 5;
/// One past the last resched flag.
pub const GHOST_RESCHED_CPU_MAX: i32 = 1 << 6;

/// `enum ghost_ops` of the old ghOSt syscall: look a gtid up.
pub const GHOST_GTID_LOOKUP: i32 = 0;
/// `enum ghost_base_ops`: the first base operation.
pub const GHOST_BASE_OP_FIRST: i32 = 65536;
/// `enum ghost_base_ops`: the caller's gtid.
pub const GHOST_BASE_GET_GTID: i32 = GHOST_BASE_OP_FIRST;
/// `GHOST_GTID_LOOKUP` kind: the thread group leader.
pub const GHOST_GTID_LOOKUP_TGID: i32 = 0;

// ---------------------------------------------------------------------------
// Status words.
// ---------------------------------------------------------------------------

/// Header at offset 0 of a status word region (`sw_regions/sw_<id>`, 2 MiB,
/// mapped read-only). C `struct ghost_sw_region_header`, 64 bytes.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostSwRegionHeader {
    /// [`GHOST_SW_REGION_VERSION`].
    pub version: u32,
    /// Region id.
    pub id: u32,
    /// NUMA node of the region's memory.
    pub numa_node: u32,
    /// Byte offset of the first status word (64).
    pub start: u32,
    /// Number of status words (65534).
    pub capacity: u32,
    /// Number of free status words.
    pub available: u32,
}

/// State of a task or agent published by the kernel. C `struct ghost_status_word`, 32 bytes.
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostStatusWord {
    /// Task barrier (+1 per message of the task), or the agent barrier.
    pub barrier: u32,
    /// `GHOST_SW_*` flags; read with acquire order.
    pub flags: u32,
    /// Owner's gtid.
    pub gtid: u64,
    /// Time (ktime ns) when the task last got on a CPU.
    pub switch_time: i64,
    /// CPU time, ns.
    pub runtime: u64,
}

/// Status word flag: the status word is live.
pub const GHOST_SW_F_INUSE: u32 = 1 << 0;
/// Status word flag: the owner died or departed; the agent must free it.
pub const GHOST_SW_F_CANFREE: u32 = 1 << 1;
/// Status word flag: the slot is taken.
pub const GHOST_SW_F_ALLOCATED: u32 = 1 << 2;
/// Agent status word flag: no higher-class work on this CPU.
pub const GHOST_SW_CPU_AVAIL: u32 = 1 << 8;
/// Agent status word flag: another class wants the CPU; yield or move.
pub const GHOST_SW_BOOST_PRIO: u32 = 1 << 9;
/// Task status word flag: the task is on a CPU.
pub const GHOST_SW_TASK_ONCPU: u32 = 1 << 16;
/// Task status word flag: the task is runnable.
pub const GHOST_SW_TASK_RUNNABLE: u32 = 1 << 17;
/// Task status word flag: the owner is an agent.
pub const GHOST_SW_TASK_IS_AGENT: u32 = 1 << 18;
/// Task status word flag: task messages gated until this status word is freed.
pub const GHOST_SW_TASK_MSG_GATED: u32 = 1 << 19;

// ---------------------------------------------------------------------------
// Transactions.
// ---------------------------------------------------------------------------

/// Context-dependent part of a [`GhostTxn`] (an anonymous union in C), 4 bytes.
///
/// ABI 91's union has a single `i32` member, so a `repr(C)` struct of that
/// member has its size, alignment and offset (checked by the layout tests)
/// and a safe read of it.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct GhostTxnU {
    /// CPU owning the sync group commit, or [`GHOST_NO_SYNC_GROUP_OWNER`].
    pub sync_group_owner: i32,
}

impl GhostTxnU {
    /// The `sync_group_owner` member.
    #[must_use]
    pub const fn sync_group_owner(self) -> i32 {
        self.sync_group_owner
    }
}

/// A scheduling transaction for one CPU. C `struct ghost_txn`, 64 bytes.
///
/// The agent fills it, stores `state = GHOST_TXN_READY` with release order,
/// commits, then waits for `state < 0` (a `GHOST_TXN_*` outcome).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostTxn {
    /// [`GHOST_TXN_VERSION`].
    pub version: i32,
    /// Target CPU (set by the kernel; read-only).
    pub cpu: i32,
    /// `GHOST_TXN_*` state, or the CPU that claimed the txn; accessed atomically.
    pub state: i32,
    /// Agent barrier the agent last saw.
    pub agent_barrier: u32,
    /// Task status word barrier the agent last saw.
    pub task_barrier: u32,
    /// Run flags (`RTLA_ON_*`, ...).
    pub run_flags: u16,
    /// Commit flags (`COMMIT_AT_*`, ...).
    pub commit_flags: u8,
    /// Padding, 0.
    pub unused: u8,
    /// Task to run, or a special gtid (`GHOST_*_GTID`).
    pub gtid: i64,
    /// Time (ktime ns) when the commit succeeded or failed.
    pub commit_time: i64,
    /// The CPU's sequence number at commit.
    pub cpu_seqnum: u64,
    /// Context-dependent fields.
    pub u: GhostTxnU,
}

/// One page of the `cpu_data` file (page i belongs to CPU i). C `struct ghost_cpu_data`, 4096 bytes.
#[repr(C, align(4096))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostCpuData {
    /// The CPU's transaction.
    pub txn: GhostTxn,
}

/// `GhostTxnU::sync_group_owner`: not in a sync group commit.
pub const GHOST_NO_SYNC_GROUP_OWNER: i32 = -1;

/// Txn state: opened by the agent, ready to commit (`INT_MAX`).
pub const GHOST_TXN_READY: i32 = i32::MAX;
/// Txn state: committed successfully (`INT_MIN`).
pub const GHOST_TXN_COMPLETE: i32 = i32::MIN;
/// Txn state: aborted by the agent.
pub const GHOST_TXN_ABORTED: i32 = i32::MIN + 1;
/// Txn state: the target task is on a CPU.
pub const GHOST_TXN_TARGET_ONCPU: i32 = i32::MIN + 2;
/// Txn state: stale task barrier, or the task is dead or gated.
pub const GHOST_TXN_TARGET_STALE: i32 = i32::MIN + 3;
/// Txn state: no task with that gtid.
pub const GHOST_TXN_TARGET_NOT_FOUND: i32 = i32::MIN + 4;
/// Txn state: the target task is not runnable.
pub const GHOST_TXN_TARGET_NOT_RUNNABLE: i32 = i32::MIN + 5;
/// Txn state: stale agent barrier (also a `DO_NOT_PREEMPT` refusal).
pub const GHOST_TXN_AGENT_STALE: i32 = i32::MIN + 6;
/// Txn state: the target CPU is offline.
pub const GHOST_TXN_CPU_OFFLINE: i32 = i32::MIN + 7;
/// Txn state: a higher class runs on the target CPU.
pub const GHOST_TXN_CPU_UNAVAIL: i32 = i32::MIN + 8;
/// Txn state: invalid run or commit flags.
pub const GHOST_TXN_INVALID_FLAGS: i32 = i32::MIN + 9;
/// Txn state: the gtid names an agent.
pub const GHOST_TXN_INVALID_TARGET: i32 = i32::MIN + 10;
/// Txn state: the caller may not commit this txn.
pub const GHOST_TXN_NOT_PERMITTED: i32 = i32::MIN + 11;
/// Txn state: invalid target CPU.
pub const GHOST_TXN_INVALID_CPU: i32 = i32::MIN + 12;
/// Txn state: the target CPU has no agent.
pub const GHOST_TXN_NO_AGENT: i32 = i32::MIN + 13;
/// Txn state: unsupported txn version.
pub const GHOST_TXN_UNSUPPORTED_VERSION: i32 = i32::MIN + 14;
/// Txn state: another txn of the sync group failed.
pub const GHOST_TXN_POISONED: i32 = i32::MIN + 15;

/// Commit flag: commit when the on-CPU task schedules (0 = greedy, any commit point).
pub const COMMIT_AT_SCHEDULE: u8 = 1 << 0;
/// Commit flag: commit during the `GHOST_IOC_COMMIT_TXN` call itself.
pub const COMMIT_AT_TXN_COMMIT: u8 = 1 << 1;
/// Commit flag: the target task may still be on a CPU.
pub const ALLOW_TASK_ONCPU: u8 = 1 << 2;
/// Commit flag: do not increment the agent barrier.
pub const ELIDE_AGENT_BARRIER_INC: u8 = 1 << 3;
/// Commit flag: increment the agent barrier also when the commit fails.
pub const INC_AGENT_BARRIER_ON_FAILURE: u8 = 1 << 4;
/// The `COMMIT_AT_*` flags (at most one may be set).
pub const COMMIT_AT_FLAGS: u8 = COMMIT_AT_SCHEDULE | COMMIT_AT_TXN_COMMIT;

/// Run flag: return to the local agent when the task is preempted.
pub const RTLA_ON_PREEMPT: u16 = 1 << 0;
/// Run flag: return to the local agent when the task blocks.
pub const RTLA_ON_BLOCKED: u16 = 1 << 1;
/// Run flag: return to the local agent when the task yields.
pub const RTLA_ON_YIELD: u16 = 1 << 2;
/// Run flag: return to the local agent when the CPU would go idle.
pub const RTLA_ON_IDLE: u16 = 1 << 5;
/// Run flag: flush the L1 data cache before running the task.
pub const NEED_L1D_FLUSH: u16 = 1 << 6;
/// Run flag: send `MSG_CPU_NOT_IDLE` (only with gtid = [`GHOST_IDLE_GTID`]).
pub const NEED_CPU_NOT_IDLE: u16 = 1 << 7;
/// Run flag: no `MSG_TASK_PREEMPT` for the ghost task being displaced.
pub const ELIDE_PREEMPT: u16 = 1 << 9;
/// Run flag: send `MSG_TASK_ON_CPU` when the task gets on the CPU.
pub const SEND_TASK_ON_CPU: u16 = 1 << 10;
/// Run flag: a latched task preempted by the agent is preempted at the tick instead.
pub const DEFER_LATCHED_PREEMPTION_BY_AGENT: u16 = 1 << 11;
/// Run flag: fail if a ghost task is running or latched on the CPU.
pub const DO_NOT_PREEMPT: u16 = 1 << 12;

// ---------------------------------------------------------------------------
// Queue association status, timerfd.
// ---------------------------------------------------------------------------

/// `GHOST_IOC_ASSOC_QUEUE` status flag: the task was already on that queue.
pub const GHOST_ASSOC_SF_ALREADY: i32 = 1 << 0;
/// `GHOST_IOC_ASSOC_QUEUE` status flag: `MSG_TASK_NEW` was not sent yet.
pub const GHOST_ASSOC_SF_BRAND_NEW: i32 = 1 << 1;

/// [`TimerfdGhost::flags`]: send `MSG_CPU_TIMER_EXPIRED` when the timer expires.
pub const TIMERFD_GHOST_ENABLED: i32 = 1 << 0;

/// Ghost part of `GHOST_IOC_TIMERFD_SETTIME`. C `struct timerfd_ghost`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerfdGhost {
    /// CPU whose agent gets the message.
    pub cpu: i32,
    /// `TIMERFD_GHOST_*` flags.
    pub flags: i32,
    /// Copied to [`GhostMsgPayloadTimer::type_`].
    pub type_: u64,
    /// Copied to [`GhostMsgPayloadTimer::cookie`].
    pub cookie: u64,
}

// ---------------------------------------------------------------------------
// ioctl arguments.
// ---------------------------------------------------------------------------

/// Argument of [`GHOST_IOC_SW_GET_INFO`]. C `struct ghost_ioc_sw_get_info`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocSwGetInfo {
    /// In: the task or agent.
    pub request: GhostMsgSrc,
    /// Out: its status word.
    pub response: GhostSwInfo,
}

/// Argument of [`GHOST_IOC_CREATE_QUEUE`]. C `struct ghost_ioc_create_queue`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocCreateQueue {
    /// Number of slots: a power of two, at most [`GHOST_MAX_QUEUE_ELEMS`].
    pub elems: i32,
    /// NUMA node of the ring memory.
    pub node: i32,
    /// Must be 0.
    pub flags: i32,
    /// Out: bytes to mmap.
    pub mapsize: u64,
}

/// Argument of [`GHOST_IOC_ASSOC_QUEUE`]. C `struct ghost_ioc_assoc_queue`, 32 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocAssocQueue {
    /// Queue fd.
    pub fd: i32,
    /// The task (must be a [`GHOST_TASK`]).
    pub src: GhostMsgSrc,
    /// Task status word barrier the agent last saw.
    pub barrier: u32,
    /// Must be 0.
    pub flags: i32,
}

/// Argument of [`GHOST_IOC_SET_DEFAULT_QUEUE`]. C `struct ghost_ioc_set_default_queue`, 4 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocSetDefaultQueue {
    /// Queue fd.
    pub fd: i32,
}

/// Argument of [`GHOST_IOC_CONFIG_QUEUE_WAKEUP`]. C `struct ghost_ioc_config_queue_wakeup`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocConfigQueueWakeup {
    /// Queue fd.
    pub qfd: i32,
    /// User address of a `[GhostAgentWakeup; ninfo]` array.
    pub w: u64,
    /// Number of entries at `w`, 0..=[`GHOST_MAX_WINFO`].
    pub ninfo: i32,
    /// Must be 0.
    pub flags: i32,
}

/// Argument of [`GHOST_IOC_GET_CPU_TIME`]. C `struct ghost_ioc_get_cpu_time`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocGetCpuTime {
    /// In: the task's gtid.
    pub gtid: i64,
    /// Out: its CPU time, ns.
    pub runtime: u64,
}

/// Argument of [`GHOST_IOC_COMMIT_TXN`] and [`GHOST_IOC_SYNC_GROUP_TXN`].
/// C `struct ghost_ioc_commit_txn`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocCommitTxn {
    /// User address of a CPU bitmask (`cpu_set_t`) of the txns to commit.
    pub mask_ptr: u64,
    /// Bytes at `mask_ptr`.
    pub mask_len: u32,
    /// Must be 0.
    pub flags: i32,
}

/// Argument of [`GHOST_IOC_TIMERFD_SETTIME`]. C `struct ghost_ioc_timerfd_settime`, 48 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocTimerfdSettime {
    /// The timerfd.
    pub timerfd: i32,
    /// `timerfd_settime()` flags.
    pub flags: i32,
    /// User address of the new `struct itimerspec`.
    pub in_tmr: u64,
    /// User address for the old `struct itimerspec`, or 0.
    pub out_tmr: u64,
    /// Ghost part: which agent gets the expiry message.
    pub timerfd_ghost: TimerfdGhost,
}

/// Argument of [`GHOST_IOC_RUN`] (and of the `ghost_run` syscall). C `struct ghost_ioc_run`, 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GhostIocRun {
    /// 0 for a local yield, [`GHOST_AGENT_GTID`] for a ping.
    pub gtid: i64,
    /// Agent barrier the agent last saw.
    pub agent_barrier: u32,
    /// Task barrier (unused for a yield or ping).
    pub task_barrier: u32,
    /// CPU of the agent to yield or ping.
    pub run_cpu: i32,
    /// [`RTLA_ON_IDLE`] for a local yield, else 0.
    pub run_flags: i32,
}

// ---------------------------------------------------------------------------
// ioctl numbers (asm-generic encoding, type letter 'g').
// ---------------------------------------------------------------------------

const IOC_NONE: u64 = 0;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// `_IOC(dir, 'g', nr, size)`.
const fn ghost_ioc(dir: u64, nr: u64, size: usize) -> u64 {
    assert!(size < (1 << 14));
    (dir << 30) | ((size as u64) << 16) | ((b'g' as u64) << 8) | nr
}

/// `_IO('g', 0)`: no-op.
pub const GHOST_IOC_NULL: u64 = ghost_ioc(IOC_NONE, 0, 0);
/// `_IOWR('g', 1, ...)`: find the status word of a task or agent ([`GhostIocSwGetInfo`]).
pub const GHOST_IOC_SW_GET_INFO: u64 =
    ghost_ioc(IOC_READ | IOC_WRITE, 1, size_of::<GhostIocSwGetInfo>());
/// `_IOW('g', 2, ...)`: free a `CANFREE` status word ([`GhostSwInfo`]).
pub const GHOST_IOC_SW_FREE: u64 = ghost_ioc(IOC_WRITE, 2, size_of::<GhostSwInfo>());
/// `_IOWR('g', 3, ...)`: create a queue, returns its fd ([`GhostIocCreateQueue`]).
pub const GHOST_IOC_CREATE_QUEUE: u64 =
    ghost_ioc(IOC_READ | IOC_WRITE, 3, size_of::<GhostIocCreateQueue>());
/// `_IOW('g', 4, ...)`: route a task's messages to a queue, returns `GHOST_ASSOC_SF_*`
/// ([`GhostIocAssocQueue`]).
pub const GHOST_IOC_ASSOC_QUEUE: u64 = ghost_ioc(IOC_WRITE, 4, size_of::<GhostIocAssocQueue>());
/// `_IOW('g', 5, ...)`: set the enclave's default queue ([`GhostIocSetDefaultQueue`]).
pub const GHOST_IOC_SET_DEFAULT_QUEUE: u64 =
    ghost_ioc(IOC_WRITE, 5, size_of::<GhostIocSetDefaultQueue>());
/// `_IOW('g', 6, ...)`: set a queue's wakeup CPUs ([`GhostIocConfigQueueWakeup`]).
pub const GHOST_IOC_CONFIG_QUEUE_WAKEUP: u64 =
    ghost_ioc(IOC_WRITE, 6, size_of::<GhostIocConfigQueueWakeup>());
/// `_IOWR('g', 7, ...)`: a task's CPU time ([`GhostIocGetCpuTime`]).
pub const GHOST_IOC_GET_CPU_TIME: u64 =
    ghost_ioc(IOC_READ | IOC_WRITE, 7, size_of::<GhostIocGetCpuTime>());
/// `_IOW('g', 8, ...)`: commit txns ([`GhostIocCommitTxn`]).
pub const GHOST_IOC_COMMIT_TXN: u64 = ghost_ioc(IOC_WRITE, 8, size_of::<GhostIocCommitTxn>());
/// `_IOW('g', 9, ...)`: commit txns as a sync group; returns 1 if all committed, else 0
/// ([`GhostIocCommitTxn`]).
pub const GHOST_IOC_SYNC_GROUP_TXN: u64 = ghost_ioc(IOC_WRITE, 9, size_of::<GhostIocCommitTxn>());
/// `_IOWR('g', 10, ...)`: `timerfd_settime()` with a ghost part ([`GhostIocTimerfdSettime`]).
pub const GHOST_IOC_TIMERFD_SETTIME: u64 = ghost_ioc(
    IOC_READ | IOC_WRITE,
    10,
    size_of::<GhostIocTimerfdSettime>(),
);
/// `_IOW('g', 11, ...)`: local yield or ping ([`GhostIocRun`]).
pub const GHOST_IOC_RUN: u64 = ghost_ioc(IOC_WRITE, 11, size_of::<GhostIocRun>());

// ---------------------------------------------------------------------------
// Compile-time checks of the sizes fixed by the ABI.
// ---------------------------------------------------------------------------

const _: () = {
    assert!(size_of::<GhostMsg>() == 8);
    assert!(size_of::<GhostRing>() == 12);
    assert!(size_of::<GhostQueueHeader>() == 64);
    assert!(size_of::<GhostSwRegionHeader>() == 64);
    assert!(size_of::<GhostStatusWord>() == 32);
    assert!(size_of::<GhostTxn>() == 64);
    assert!(size_of::<GhostCpuData>() == 4096);
    assert!(size_of::<GhostMsgPayloadTaskNew>() == 48);
    assert!(size_of::<GhostIocAssocQueue>() == 32);
    assert!(size_of::<GhostIocTimerfdSettime>() == 48);
    assert!(GHOST_IOC_RUN == 0x4018_670b);
};
