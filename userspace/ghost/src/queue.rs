//! Queues: the rings through which the kernel sends messages to agents.
//!
//! A queue is created with `GHOST_IOC_CREATE_QUEUE` on an enclave's `ctl`
//! ([`Queue::create`]) and mapped read-write. Its mapping holds a
//! `struct ghost_queue_header`, then at `start` the `struct ghost_ring`:
//! `head` (written by the kernel), `tail` (written by the agent),
//! `overflow`, and `nelems` 8-byte slots. A message takes
//! `ceil(length / 8)` consecutive slots and never wraps: the kernel pads the
//! end of the ring with one `MSG_NOP`.
//!
//! The [`Consumer`] reads it as ghOSt's agents do: acquire load of `head`,
//! the messages from `tail` up to `head` (NOPs skipped), then a release
//! store of the new `tail`. The mapping is shared memory and is not
//! trusted: a garbage `head`, length or type never makes the consumer panic
//! or read outside the mapping; it reports [`RingError::Corrupt`] and
//! resynchronizes at `head`. Slots start at byte 76 of the mapping, so
//! 64-bit payload fields are only 4-aligned: payloads are copied out with
//! 32-bit reads and decoded with `read_unaligned`.

use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use ghost_abi as abi;
use ghost_abi::{GhostMsg, GhostQueueHeader, GhostRing};

use crate::error::{Error, Result};
use crate::ffi::{read_plain as read_payload, Mapping, Plain as Payload};
use crate::sys;

/// Bytes of one ring slot (`sizeof(struct ghost_msg)`).
const SLOT: usize = size_of::<GhostMsg>();

/// The largest payload decoded; longer messages are cut to this (no ABI 91
/// payload is longer than 48 bytes).
pub const MAX_PAYLOAD: usize = 64;

/// The largest mapping accepted for a queue (65536 slots need 516 KiB).
const MAX_MAPSIZE: u64 = 1 << 24;

/// A queue: its descriptor (an anonymous inode `[ghost_queue]`) and its
/// mapped ring.
#[derive(Debug)]
pub struct Queue {
    fd: OwnedFd,
    ring: Ring,
}

impl Queue {
    /// Creates a queue of `elems` slots (a power of two, at most
    /// [`abi::GHOST_MAX_QUEUE_ELEMS`]) on NUMA node `node` (-1: any) with
    /// `GHOST_IOC_CREATE_QUEUE` on `ctl`, an enclave's `ctl` opened for
    /// writing (`ctl_name` names it in errors), and maps it.
    pub fn create(ctl: BorrowedFd<'_>, ctl_name: &str, elems: u32, node: i32) -> Result<Self> {
        let what = || format!("GHOST_IOC_CREATE_QUEUE ({elems} slots, node {node}) on {ctl_name}");
        let mut arg = abi::GhostIocCreateQueue {
            elems: i32::try_from(elems).map_err(|_| Error::sys(what(), libc::EINVAL))?,
            node,
            flags: 0,
            mapsize: 0,
        };
        let fd = sys::ioctl_create_queue(ctl, &mut arg).map_err(|e| e.context(what()))?;
        if arg.mapsize == 0 || arg.mapsize > MAX_MAPSIZE {
            return Err(Error::msg(
                what(),
                format!("mapsize {} is not plausible", arg.mapsize),
            ));
        }
        let map = Mapping::map_shared(
            fd.as_fd(),
            arg.mapsize as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            "[ghost_queue]",
        )?;
        Ok(Self {
            fd,
            ring: Ring::new(map, elems)?,
        })
    }

    /// The queue's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The descriptor's number, as `become agent <cpu> <qfd>` and the
    /// queue ioctls take it.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The mapped ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }
}

/// Why the consumer could not deliver a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The kernel dropped `dropped` messages because the ring was full
    /// (its `overflow` counter moved). Their content is lost.
    Overflow {
        /// How many messages were dropped since the last report.
        dropped: u32,
    },
    /// The ring's content cannot be right (`head` more than `nelems`
    /// ahead, a length shorter than a header or running past `head` or the
    /// end of the ring). The consumer skipped to `head`: every message up
    /// to there is lost.
    Corrupt {
        /// `head` when it was seen.
        head: u32,
        /// `tail` where the bad message started.
        tail: u32,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A validated view of a queue mapping.
#[derive(Debug)]
pub struct Ring {
    map: Mapping,
    nelems: u32,
    /// Byte offset of `struct ghost_ring` (the header's `start`).
    ring_off: usize,
}

impl Ring {
    /// Checks the header of `map` against the `nelems` slots the queue was
    /// created with: version 0, a 4-aligned `start` past the header,
    /// `nelems` a power of two up to [`abi::GHOST_MAX_QUEUE_ELEMS`], and
    /// the ring inside the mapping.
    pub fn new(map: Mapping, nelems: u32) -> Result<Self> {
        let bad = |d: String| Error::msg("queue mapping", d);
        let word = |off: usize| {
            map.read_u32(off)
                .ok_or_else(|| bad("shorter than its header".into()))
        };
        let version = word(offset_of!(GhostQueueHeader, version))?;
        let start = word(offset_of!(GhostQueueHeader, start))? as usize;
        let hdr_nelems = word(offset_of!(GhostQueueHeader, nelems))?;
        if version != abi::GHOST_QUEUE_VERSION {
            return Err(bad(format!(
                "version {version}, want {}",
                abi::GHOST_QUEUE_VERSION
            )));
        }
        if !nelems.is_power_of_two() || nelems > abi::GHOST_MAX_QUEUE_ELEMS || hdr_nelems != nelems
        {
            return Err(bad(format!(
                "nelems {hdr_nelems}, want {nelems} (a power of two up to 65536)"
            )));
        }
        let end = (nelems as usize)
            .checked_mul(SLOT)
            .and_then(|s| s.checked_add(start + offset_of!(GhostRing, msgs)));
        if start < size_of::<GhostQueueHeader>()
            || start % 4 != 0
            || !end.is_some_and(|e| e <= map.len())
        {
            return Err(bad(format!(
                "ring at {start} does not fit {} bytes",
                map.len()
            )));
        }
        Ok(Self {
            map,
            nelems,
            ring_off: start,
        })
    }

    /// The number of slots.
    pub fn nelems(&self) -> u32 {
        self.nelems
    }

    /// The ring counter at `field` (an offset in `struct ghost_ring`).
    fn counter(&self, field: usize) -> &AtomicU32 {
        // `Ring::new` checked that the ring header is inside the mapping and
        // 4-aligned, so this lookup cannot fail; the fallback keeps the
        // accessor total without a panic path.
        static ZERO: AtomicU32 = AtomicU32::new(0);
        self.map.atomic(self.ring_off + field).unwrap_or(&ZERO)
    }

    /// `head`, as the kernel last published it (acquire).
    pub fn head(&self) -> u32 {
        self.counter(offset_of!(GhostRing, head))
            .load(Ordering::Acquire)
    }

    /// The kernel's count of messages dropped for lack of room.
    pub fn overflow(&self) -> u32 {
        self.counter(offset_of!(GhostRing, overflow))
            .load(Ordering::Relaxed)
    }

    /// A consumer starting at the ring's current `tail`. A ring has one
    /// consumer at a time. Drops the kernel counted before (a nonzero
    /// `overflow`) are reported by its first [`Consumer::pop`].
    pub fn consumer(&self) -> Consumer<'_> {
        Consumer {
            tail: self
                .counter(offset_of!(GhostRing, tail))
                .load(Ordering::Relaxed),
            overflow_seen: 0,
            nops: 0,
            ring: self,
        }
    }

    /// Byte offset of slot `i` (`i < nelems`).
    fn slot_off(&self, i: u32) -> usize {
        self.ring_off + offset_of!(GhostRing, msgs) + i as usize * SLOT
    }

    /// The mapping (tests play the kernel through it).
    #[cfg(test)]
    pub(crate) fn mapping(&self) -> &Mapping {
        &self.map
    }
}

/// A message read from a queue: its sequence number (the source's barrier
/// after the message) and its decoded content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The message's `seqnum`.
    pub seqnum: u32,
    /// The message.
    pub msg: Message,
}

/// Reads a [`Ring`]; see the module documentation.
#[derive(Debug)]
pub struct Consumer<'r> {
    ring: &'r Ring,
    tail: u32,
    overflow_seen: u32,
    nops: u64,
}

impl Consumer<'_> {
    /// The next message, `None` if the ring is empty. NOP padding is
    /// consumed silently. An error is reported once; the consumer then goes
    /// on with what follows.
    pub fn pop(&mut self) -> Option<std::result::Result<Received, RingError>> {
        let overflow = self.ring.overflow();
        if overflow != self.overflow_seen {
            let dropped = overflow.wrapping_sub(self.overflow_seen);
            self.overflow_seen = overflow;
            return Some(Err(RingError::Overflow { dropped }));
        }
        loop {
            let head = self.ring.head();
            let avail = head.wrapping_sub(self.tail);
            if avail == 0 {
                return None;
            }
            match self.next_message(avail) {
                Ok((nslots, Some(r))) => {
                    self.advance(nslots);
                    return Some(Ok(r));
                }
                Ok((nslots, None)) => {
                    self.nops += 1;
                    self.advance(nslots);
                }
                Err(reason) => {
                    let tail = self.tail;
                    self.tail = head;
                    self.publish_tail();
                    return Some(Err(RingError::Corrupt { head, tail, reason }));
                }
            }
        }
    }

    /// Reads the message at `tail` with `avail` slots published: its slot
    /// count and content (`None` for a NOP).
    fn next_message(
        &self,
        avail: u32,
    ) -> std::result::Result<(u32, Option<Received>), &'static str> {
        let nelems = self.ring.nelems;
        if avail > nelems {
            return Err("head is more than nelems ahead of tail");
        }
        let slot = self.tail & (nelems - 1);
        let off = self.ring.slot_off(slot);
        let (Some(w0), Some(seqnum)) =
            (self.ring.map.read_u32(off), self.ring.map.read_u32(off + 4))
        else {
            return Err("slot outside the mapping");
        };
        let (type_, length) = (w0 as u16, (w0 >> 16) as u16);
        if usize::from(length) < SLOT {
            return Err("message shorter than its header");
        }
        let nslots = u32::from(length).div_ceil(SLOT as u32);
        if nslots > nelems - slot {
            return Err("message runs past the end of the ring");
        }
        if nslots > avail {
            return Err("message runs past head");
        }
        if type_ == abi::MSG_NOP {
            return Ok((nslots, None));
        }
        let mut payload = [0u8; MAX_PAYLOAD];
        let plen = (usize::from(length) - SLOT).min(MAX_PAYLOAD);
        if !self.ring.map.copy_out(off + SLOT, &mut payload[..plen]) {
            return Err("payload outside the mapping");
        }
        let msg = Message::decode(type_, &payload[..plen]);
        Ok((nslots, Some(Received { seqnum, msg })))
    }

    fn advance(&mut self, nslots: u32) {
        self.tail = self.tail.wrapping_add(nslots);
        self.publish_tail();
    }

    /// Release-stores `tail`: the kernel may reuse the slots read.
    fn publish_tail(&self) {
        self.ring
            .counter(offset_of!(GhostRing, tail))
            .store(self.tail, Ordering::Release);
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.ring.head() == self.tail
    }

    /// NOP paddings consumed so far.
    pub fn nops(&self) -> u64 {
        self.nops
    }
}

/// A decoded message: every ABI 91 type with its payload (the uapi
/// structure). `MSG_NOP` never shows up: the consumer skips padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// `MSG_TASK_NEW`: a task entered the enclave, or was discovered.
    TaskNew(abi::GhostMsgPayloadTaskNew),
    /// `MSG_TASK_WAKEUP`: a task became runnable.
    TaskWakeup(abi::GhostMsgPayloadTaskWakeup),
    /// `MSG_TASK_BLOCKED`: a task blocked.
    TaskBlocked(abi::GhostMsgPayloadTaskBlocked),
    /// `MSG_TASK_PREEMPT`: a running or latched task lost its CPU.
    TaskPreempt(abi::GhostMsgPayloadTaskPreempt),
    /// `MSG_TASK_YIELD`: a task yielded.
    TaskYield(abi::GhostMsgPayloadTaskYield),
    /// `MSG_TASK_DEAD`: a task exited.
    TaskDead(abi::GhostMsgPayloadTaskDead),
    /// `MSG_TASK_DEPARTED`: a task left ghost.
    TaskDeparted(abi::GhostMsgPayloadTaskDeparted),
    /// `MSG_TASK_SWITCHTO`: a task switched to another directly.
    TaskSwitchto(abi::GhostMsgPayloadTaskSwitchto),
    /// `MSG_TASK_AFFINITY_CHANGED`: a task's allowed CPUs changed.
    TaskAffinityChanged(abi::GhostMsgPayloadTaskAffinityChanged),
    /// `MSG_TASK_ON_CPU`: a task committed with `SEND_TASK_ON_CPU` got its CPU.
    TaskOnCpu(abi::GhostMsgPayloadTaskOnCpu),
    /// `MSG_TASK_PRIORITY_CHANGED`: a task's nice value changed.
    TaskPriorityChanged(abi::GhostMsgPayloadTaskPriorityChanged),
    /// `MSG_TASK_LATCH_FAILURE`: a latched task could not run.
    TaskLatchFailure(abi::GhostMsgPayloadTaskLatchFailure),
    /// `MSG_CPU_TICK`: a timer tick.
    CpuTick(abi::GhostMsgPayloadCpuTick),
    /// `MSG_CPU_TIMER_EXPIRED`: a ghost timerfd expired.
    CpuTimerExpired(abi::GhostMsgPayloadTimer),
    /// `MSG_CPU_NOT_IDLE`: a CPU left idle for a task of another class.
    CpuNotIdle(abi::GhostMsgPayloadCpuNotIdle),
    /// `MSG_CPU_AVAILABLE`: no higher-class work on a CPU any more.
    CpuAvailable(abi::GhostMsgPayloadCpuAvailable),
    /// `MSG_CPU_BUSY`: a higher class took a CPU.
    CpuBusy(abi::GhostMsgPayloadCpuBusy),
    /// `MSG_CPU_AGENT_BLOCKED`: a CPU's agent blocked.
    CpuAgentBlocked(abi::GhostMsgPayloadAgentBlocked),
    /// `MSG_CPU_AGENT_WAKEUP`: a CPU's agent woke up.
    CpuAgentWakeup(abi::GhostMsgPayloadAgentWakeup),
    /// A type this library does not know.
    Unknown {
        /// The message type.
        type_: u16,
        /// Its payload length in bytes (as far as it was read).
        len: u16,
    },
    /// A known type whose payload is shorter than the ABI's.
    Malformed {
        /// The message type.
        type_: u16,
        /// Its payload length in bytes.
        len: u16,
    },
}

/// The message types of ABI 91 and their names, in the order statistics
/// list them.
pub const MESSAGE_TYPES: [(u16, &str); 19] = [
    (abi::MSG_TASK_NEW, "TASK_NEW"),
    (abi::MSG_TASK_WAKEUP, "TASK_WAKEUP"),
    (abi::MSG_TASK_BLOCKED, "TASK_BLOCKED"),
    (abi::MSG_TASK_PREEMPT, "TASK_PREEMPT"),
    (abi::MSG_TASK_YIELD, "TASK_YIELD"),
    (abi::MSG_TASK_DEAD, "TASK_DEAD"),
    (abi::MSG_TASK_DEPARTED, "TASK_DEPARTED"),
    (abi::MSG_TASK_SWITCHTO, "TASK_SWITCHTO"),
    (abi::MSG_TASK_AFFINITY_CHANGED, "TASK_AFFINITY_CHANGED"),
    (abi::MSG_TASK_ON_CPU, "TASK_ON_CPU"),
    (abi::MSG_TASK_PRIORITY_CHANGED, "TASK_PRIORITY_CHANGED"),
    (abi::MSG_TASK_LATCH_FAILURE, "TASK_LATCH_FAILURE"),
    (abi::MSG_CPU_TICK, "CPU_TICK"),
    (abi::MSG_CPU_TIMER_EXPIRED, "CPU_TIMER_EXPIRED"),
    (abi::MSG_CPU_NOT_IDLE, "CPU_NOT_IDLE"),
    (abi::MSG_CPU_AVAILABLE, "CPU_AVAILABLE"),
    (abi::MSG_CPU_BUSY, "CPU_BUSY"),
    (abi::MSG_CPU_AGENT_BLOCKED, "CPU_AGENT_BLOCKED"),
    (abi::MSG_CPU_AGENT_WAKEUP, "CPU_AGENT_WAKEUP"),
];

/// The position of message type `type_` in [`MESSAGE_TYPES`], or
/// `MESSAGE_TYPES.len()` for a type not listed.
pub fn message_index(type_: u16) -> usize {
    MESSAGE_TYPES
        .iter()
        .position(|&(t, _)| t == type_)
        .unwrap_or(MESSAGE_TYPES.len())
}

impl Message {
    /// Decodes a message of type `type_` with payload `bytes`.
    pub fn decode(type_: u16, bytes: &[u8]) -> Self {
        fn p<T: Payload>(type_: u16, b: &[u8], f: impl FnOnce(T) -> Message) -> Message {
            match read_payload::<T>(b) {
                Some(v) => f(v),
                None => Message::Malformed {
                    type_,
                    len: b.len() as u16,
                },
            }
        }
        let b = bytes;
        match type_ {
            abi::MSG_TASK_NEW => p(type_, b, Self::TaskNew),
            abi::MSG_TASK_WAKEUP => p(type_, b, Self::TaskWakeup),
            abi::MSG_TASK_BLOCKED => p(type_, b, Self::TaskBlocked),
            abi::MSG_TASK_PREEMPT => p(type_, b, Self::TaskPreempt),
            abi::MSG_TASK_YIELD => p(type_, b, Self::TaskYield),
            abi::MSG_TASK_DEAD => p(type_, b, Self::TaskDead),
            abi::MSG_TASK_DEPARTED => p(type_, b, Self::TaskDeparted),
            abi::MSG_TASK_SWITCHTO => p(type_, b, Self::TaskSwitchto),
            abi::MSG_TASK_AFFINITY_CHANGED => p(type_, b, Self::TaskAffinityChanged),
            abi::MSG_TASK_ON_CPU => p(type_, b, Self::TaskOnCpu),
            abi::MSG_TASK_PRIORITY_CHANGED => p(type_, b, Self::TaskPriorityChanged),
            abi::MSG_TASK_LATCH_FAILURE => p(type_, b, Self::TaskLatchFailure),
            abi::MSG_CPU_TICK => p(type_, b, Self::CpuTick),
            abi::MSG_CPU_TIMER_EXPIRED => p(type_, b, Self::CpuTimerExpired),
            abi::MSG_CPU_NOT_IDLE => p(type_, b, Self::CpuNotIdle),
            abi::MSG_CPU_AVAILABLE => p(type_, b, Self::CpuAvailable),
            abi::MSG_CPU_BUSY => p(type_, b, Self::CpuBusy),
            abi::MSG_CPU_AGENT_BLOCKED => p(type_, b, Self::CpuAgentBlocked),
            abi::MSG_CPU_AGENT_WAKEUP => p(type_, b, Self::CpuAgentWakeup),
            _ => Self::Unknown {
                type_,
                len: b.len() as u16,
            },
        }
    }

    /// The message type (`MSG_*`).
    pub fn type_(&self) -> u16 {
        match self {
            Self::TaskNew(_) => abi::MSG_TASK_NEW,
            Self::TaskWakeup(_) => abi::MSG_TASK_WAKEUP,
            Self::TaskBlocked(_) => abi::MSG_TASK_BLOCKED,
            Self::TaskPreempt(_) => abi::MSG_TASK_PREEMPT,
            Self::TaskYield(_) => abi::MSG_TASK_YIELD,
            Self::TaskDead(_) => abi::MSG_TASK_DEAD,
            Self::TaskDeparted(_) => abi::MSG_TASK_DEPARTED,
            Self::TaskSwitchto(_) => abi::MSG_TASK_SWITCHTO,
            Self::TaskAffinityChanged(_) => abi::MSG_TASK_AFFINITY_CHANGED,
            Self::TaskOnCpu(_) => abi::MSG_TASK_ON_CPU,
            Self::TaskPriorityChanged(_) => abi::MSG_TASK_PRIORITY_CHANGED,
            Self::TaskLatchFailure(_) => abi::MSG_TASK_LATCH_FAILURE,
            Self::CpuTick(_) => abi::MSG_CPU_TICK,
            Self::CpuTimerExpired(_) => abi::MSG_CPU_TIMER_EXPIRED,
            Self::CpuNotIdle(_) => abi::MSG_CPU_NOT_IDLE,
            Self::CpuAvailable(_) => abi::MSG_CPU_AVAILABLE,
            Self::CpuBusy(_) => abi::MSG_CPU_BUSY,
            Self::CpuAgentBlocked(_) => abi::MSG_CPU_AGENT_BLOCKED,
            Self::CpuAgentWakeup(_) => abi::MSG_CPU_AGENT_WAKEUP,
            Self::Unknown { type_, .. } | Self::Malformed { type_, .. } => *type_,
        }
    }

    /// The type's name (`TASK_NEW`), `UNKNOWN` for other types.
    pub fn name(&self) -> &'static str {
        MESSAGE_TYPES
            .get(message_index(self.type_()))
            .map_or("UNKNOWN", |&(_, n)| n)
    }

    /// The task of a task message.
    pub fn gtid(&self) -> Option<i64> {
        let g = match self {
            Self::TaskNew(p) => p.gtid,
            Self::TaskWakeup(p) => p.gtid,
            Self::TaskBlocked(p) => p.gtid,
            Self::TaskPreempt(p) => p.gtid,
            Self::TaskYield(p) => p.gtid,
            Self::TaskDead(p) => p.gtid,
            Self::TaskDeparted(p) => p.gtid,
            Self::TaskSwitchto(p) => p.gtid,
            Self::TaskAffinityChanged(p) => p.gtid,
            Self::TaskOnCpu(p) => p.gtid,
            Self::TaskPriorityChanged(p) => p.gtid,
            Self::TaskLatchFailure(p) => p.gtid,
            _ => return None,
        };
        Some(g as i64)
    }

    /// The CPU a message names: the CPU of a CPU message, or where a task
    /// message happened (`None` for task messages without a CPU).
    pub fn cpu(&self) -> Option<i32> {
        Some(match self {
            Self::TaskBlocked(p) => p.cpu,
            Self::TaskPreempt(p) => p.cpu,
            Self::TaskYield(p) => p.cpu,
            Self::TaskDead(p) => p.cpu,
            Self::TaskDeparted(p) => p.cpu,
            Self::TaskSwitchto(p) => p.cpu,
            Self::TaskOnCpu(p) => p.cpu,
            Self::CpuTick(p) => p.cpu,
            Self::CpuTimerExpired(p) => p.cpu,
            Self::CpuNotIdle(p) => p.cpu,
            Self::CpuAvailable(p) => p.cpu,
            Self::CpuBusy(p) => p.cpu,
            Self::CpuAgentBlocked(p) => p.cpu,
            Self::CpuAgentWakeup(p) => p.cpu,
            _ => return None,
        })
    }
}

/// A kernel stand-in for tests: writes messages into a ring as the ghost-rs
/// kernel does (NOP padding at the end, `overflow` when full, release
/// store of `head`).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Offsets of the ring counters in a test mapping (ring at 64).
    const HEAD: usize = 64 + offset_of!(GhostRing, head);
    const TAIL: usize = 64 + offset_of!(GhostRing, tail);
    const OVERFLOW: usize = 64 + offset_of!(GhostRing, overflow);

    /// The length of a mapping for `nelems` slots.
    pub fn mapsize(nelems: u32) -> usize {
        (64 + 12 + nelems as usize * 8).next_multiple_of(4096)
    }

    /// A zeroed ring of `nelems` slots with its header filled in.
    pub fn ring(nelems: u32) -> Ring {
        let m = Mapping::anonymous(mapsize(nelems)).unwrap();
        m.write_u32(offset_of!(GhostQueueHeader, start), 64);
        m.write_u32(offset_of!(GhostQueueHeader, nelems), nelems);
        Ring::new(m, nelems).unwrap()
    }

    /// A value as the kernel lays it out in a message: its fields at their
    /// offsets, zeros in between (padding is never read as bytes).
    pub trait Wire {
        /// The bytes.
        fn wire(&self) -> Vec<u8>;
    }

    macro_rules! wire_int {
        ($($t:ty),*) => {$(
            impl Wire for $t {
                fn wire(&self) -> Vec<u8> {
                    self.to_ne_bytes().to_vec()
                }
            }
        )*};
    }
    wire_int!(u8, u16, i32, u32, u64);

    macro_rules! wire_struct {
        ($($t:ident { $($f:ident),* })*) => {$(
            impl Wire for abi::$t {
                fn wire(&self) -> Vec<u8> {
                    let mut b = vec![0u8; size_of::<abi::$t>()];
                    $(
                        let f = self.$f.wire();
                        let at = offset_of!(abi::$t, $f);
                        b[at..at + f.len()].copy_from_slice(&f);
                    )*
                    b
                }
            }
        )*};
    }
    wire_struct!(
        GhostSwInfo { id, index }
        GhostMsgPayloadTaskNew { gtid, parent_gtid, runtime, runnable, nice, sw_info, agent_data }
        GhostMsgPayloadTaskWakeup { gtid, agent_data, deferrable, last_ran_cpu, wake_up_cpu, waker_cpu }
        GhostMsgPayloadTaskBlocked { gtid, runtime, cpu_seqnum, cpu, from_switchto }
        GhostMsgPayloadTaskPreempt { gtid, runtime, cpu_seqnum, agent_data, cpu, from_switchto, was_latched }
        GhostMsgPayloadTaskYield { gtid, runtime, cpu_seqnum, agent_data, cpu, from_switchto }
        GhostMsgPayloadTaskDead { gtid, cpu }
        GhostMsgPayloadTaskDeparted { gtid, cpu_seqnum, cpu, from_switchto, was_current }
        GhostMsgPayloadTaskAffinityChanged { gtid }
        GhostMsgPayloadTaskPriorityChanged { gtid, nice }
        GhostMsgPayloadCpuBusy { cpu }
        GhostMsgPayloadCpuAvailable { cpu }
    );

    /// The producer side of a ring.
    pub struct Producer<'r> {
        pub ring: &'r Ring,
        pub head: u32,
    }

    impl<'r> Producer<'r> {
        pub fn new(ring: &'r Ring) -> Self {
            Self { ring, head: 0 }
        }

        fn word(&self, counter: u32, word: usize, v: u32) {
            let i = counter & (self.ring.nelems - 1);
            assert!(self
                .ring
                .mapping()
                .write_u32(self.ring.slot_off(i) + word * 4, v));
        }

        /// Appends a message with a raw `length`; false if it was dropped.
        pub fn push_raw(&mut self, type_: u16, length: u16, seqnum: u32, payload: &[u8]) -> bool {
            let m = self.ring.mapping();
            let needed = u32::from(length).div_ceil(8).max(1);
            let tail = m.atomic::<AtomicU32>(TAIL).unwrap().load(Ordering::Acquire);
            let free = self.ring.nelems - self.head.wrapping_sub(tail);
            let to_end = self.ring.nelems - (self.head & (self.ring.nelems - 1));
            let skip = if needed > to_end { to_end } else { 0 };
            if skip + needed > free {
                m.atomic::<AtomicU32>(OVERFLOW)
                    .unwrap()
                    .fetch_add(1, Ordering::Relaxed);
                return false;
            }
            if skip > 0 {
                self.word(self.head, 0, (skip * 8) << 16);
                self.word(self.head, 1, 0);
                self.head = self.head.wrapping_add(skip);
            }
            self.word(self.head, 0, u32::from(type_) | (u32::from(length) << 16));
            self.word(self.head, 1, seqnum);
            let mut p = payload.to_vec();
            p.resize(p.len().next_multiple_of(4), 0);
            for (k, c) in p.chunks_exact(4).enumerate() {
                let w = u32::from_ne_bytes(c.try_into().unwrap());
                self.word(self.head.wrapping_add(1 + (k / 2) as u32), k % 2, w);
            }
            self.head = self.head.wrapping_add(needed);
            self.publish();
            true
        }

        /// Appends a message with its payload.
        pub fn push<T: Wire>(&mut self, type_: u16, seqnum: u32, payload: &T) -> bool {
            let b = payload.wire();
            self.push_raw(type_, (8 + b.len()) as u16, seqnum, &b)
        }

        /// Sets the consumer's `tail` (where a consumer starts).
        pub fn set_tail(&self, tail: u32) {
            self.ring.mapping().write_u32(TAIL, tail);
        }

        /// The consumer's published `tail`.
        pub fn tail(&self) -> u32 {
            self.ring.mapping().read_u32(TAIL).unwrap()
        }

        /// Overwrites the header word (type, length) of the slot of `counter`.
        pub fn set_header(&self, counter: u32, type_: u16, length: u16) {
            self.word(counter, 0, u32::from(type_) | (u32::from(length) << 16));
        }

        /// Release-stores `head`.
        pub fn publish(&self) {
            let m = self.ring.mapping();
            m.atomic::<AtomicU32>(HEAD)
                .unwrap()
                .store(self.head, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use abi::*;

    fn wakeup(gtid: u64) -> GhostMsgPayloadTaskWakeup {
        GhostMsgPayloadTaskWakeup {
            gtid,
            waker_cpu: 3,
            ..Default::default()
        }
    }

    fn drain(c: &mut Consumer<'_>) -> Vec<std::result::Result<Received, RingError>> {
        std::iter::from_fn(|| c.pop()).collect()
    }

    #[test]
    fn empty_ring_pops_nothing() {
        let r = ring(64);
        let mut c = r.consumer();
        assert!(c.is_empty());
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn messages_come_out_in_order_with_unaligned_payloads() {
        let r = ring(64);
        let mut p = Producer::new(&r);
        let new = GhostMsgPayloadTaskNew {
            gtid: 0x1234_5678_9abc,
            parent_gtid: 7,
            runtime: u64::MAX - 1,
            runnable: 1,
            nice: -5,
            sw_info: GhostSwInfo { id: 2, index: 99 },
            agent_data: 0xfeed,
        };
        assert!(p.push(MSG_TASK_NEW, 1, &new));
        assert!(p.push(MSG_TASK_WAKEUP, 2, &wakeup(5)));
        let mut c = r.consumer();
        let got = drain(&mut c);
        assert_eq!(
            got,
            vec![
                Ok(Received {
                    seqnum: 1,
                    msg: Message::TaskNew(new)
                }),
                Ok(Received {
                    seqnum: 2,
                    msg: Message::TaskWakeup(wakeup(5))
                }),
            ]
        );
        // The consumer published its tail: the slots are free again.
        assert_eq!(p.tail(), p.head);
        assert!(c.is_empty());
    }

    #[test]
    fn nop_padding_at_the_end_is_skipped_and_counters_wrap() {
        let r = ring(16);
        let mut p = Producer::new(&r);
        // Start near the end of u32 so that head and tail wrap too.
        let start = u32::MAX - 20;
        p.head = start;
        p.publish();
        p.set_tail(start);
        let mut c = r.consumer();
        let mut seq = 0;
        for round in 0..50u64 {
            // 32-byte messages (4 slots) and 56-byte ones (7 slots) make the
            // ends not line up with the ring's.
            assert!(p.push(MSG_TASK_WAKEUP, seq, &wakeup(round)));
            let new = GhostMsgPayloadTaskNew {
                gtid: round,
                ..Default::default()
            };
            assert!(p.push(MSG_TASK_NEW, seq + 1, &new));
            let got = drain(&mut c);
            assert_eq!(got.len(), 2, "round {round}: {got:?}");
            assert_eq!(
                got[0],
                Ok(Received {
                    seqnum: seq,
                    msg: Message::TaskWakeup(wakeup(round))
                })
            );
            assert_eq!(got[1].unwrap().msg.gtid(), Some(round as i64));
            seq += 2;
        }
        assert!(c.nops() > 0, "no NOP was produced");
        assert!(p.head < start, "head did not wrap");
    }

    #[test]
    fn overflow_is_reported_once_then_the_rest_is_read() {
        let r = ring(16);
        let mut p = Producer::new(&r);
        // Three 5-slot messages fill the ring; two more are dropped.
        for g in 0..5 {
            p.push(MSG_TASK_WAKEUP, g, &wakeup(u64::from(g)));
        }
        let mut c = r.consumer();
        assert_eq!(c.pop(), Some(Err(RingError::Overflow { dropped: 2 })));
        let got = drain(&mut c);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|m| m.is_ok()));
        // Room again.
        assert!(p.push(MSG_TASK_WAKEUP, 9, &wakeup(9)));
        assert_eq!(c.pop().unwrap().unwrap().seqnum, 9);
    }

    #[test]
    fn garbage_never_panics_and_resynchronizes_at_head() {
        for length in [0u16, 1, 7] {
            let r = ring(16);
            let mut p = Producer::new(&r);
            p.push_raw(MSG_TASK_WAKEUP, length, 1, &[]);
            let mut c = r.consumer();
            assert!(
                matches!(
                    c.pop(),
                    Some(Err(RingError::Corrupt {
                        reason: "message shorter than its header",
                        ..
                    }))
                ),
                "length {length}"
            );
            assert_eq!(c.pop(), None);
            // Later messages are read normally.
            p.push(MSG_TASK_WAKEUP, 2, &wakeup(1));
            assert_eq!(c.pop().unwrap().unwrap().seqnum, 2);
        }
        // A length running past the end of the ring, and past head.
        for (length, reason) in [
            (65535, "message runs past the end of the ring"),
            (32, "message runs past head"),
        ] {
            let r = ring(16);
            let mut p = Producer::new(&r);
            p.push_raw(MSG_TASK_WAKEUP, 16, 1, &[0; 8]);
            p.set_header(0, MSG_TASK_WAKEUP, length);
            let mut c = r.consumer();
            assert!(
                matches!(c.pop(), Some(Err(RingError::Corrupt { reason: r, .. })) if r == reason),
                "length {length}"
            );
            assert_eq!(c.pop(), None);
        }
        // head far ahead of tail.
        let r = ring(16);
        let mut p = Producer::new(&r);
        p.push_raw(MSG_TASK_WAKEUP, 16, 1, &[0; 8]);
        p.head = p.head.wrapping_add(40);
        p.publish();
        let mut c = r.consumer();
        assert!(matches!(
            c.pop(),
            Some(Err(RingError::Corrupt {
                reason: "head is more than nelems ahead of tail",
                ..
            }))
        ));
        assert_eq!(c.pop(), None);
        assert_eq!(p.tail(), p.head);
        // Random words everywhere: whatever comes out, nothing panics and
        // the consumer ends up empty.
        let r = ring(64);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for off in (76..76 + 64 * 8).step_by(4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            r.mapping().write_u32(off, x as u32);
        }
        let p = Producer { ring: &r, head: 64 };
        p.publish();
        let mut c = r.consumer();
        for _ in 0..200 {
            if c.pop().is_none() {
                break;
            }
        }
        assert!(c.is_empty());
    }

    #[test]
    fn short_payloads_are_malformed_and_unknown_types_kept() {
        let r = ring(16);
        let mut p = Producer::new(&r);
        p.push_raw(MSG_TASK_NEW, 8 + 8, 1, &[1; 8]);
        p.push_raw(200, 8 + 4, 2, &[0; 4]);
        p.push_raw(MSG_CPU_TICK, 8 + 8, 3, &[5, 0, 0, 0, 1, 0, 0, 0]);
        let mut c = r.consumer();
        let got: Vec<Message> = drain(&mut c).into_iter().map(|m| m.unwrap().msg).collect();
        assert_eq!(
            got,
            vec![
                Message::Malformed {
                    type_: MSG_TASK_NEW,
                    len: 8
                },
                Message::Unknown { type_: 200, len: 4 },
                Message::CpuTick(GhostMsgPayloadCpuTick {
                    cpu: 5,
                    is_agent: 1
                }),
            ]
        );
        assert_eq!(got[1].name(), "UNKNOWN");
        assert_eq!(got[2].name(), "CPU_TICK");
        assert_eq!(got[2].cpu(), Some(5));
        assert_eq!(got[2].gtid(), None);
    }

    #[test]
    fn every_abi_type_decodes_to_its_variant() {
        let full = [0u8; MAX_PAYLOAD];
        for (i, &(t, name)) in MESSAGE_TYPES.iter().enumerate() {
            let m = Message::decode(t, &full);
            assert_eq!(m.type_(), t);
            assert_eq!(m.name(), name);
            assert_eq!(message_index(t), i);
            assert!(
                !matches!(m, Message::Unknown { .. } | Message::Malformed { .. }),
                "{name}"
            );
            assert_eq!(
                m.gtid().is_some(),
                (MSG_TASK_FIRST..=MSG_TASK_LAST).contains(&t),
                "{name}"
            );
            // One byte short of the ABI size is malformed.
            let short = Message::decode(t, &full[..payload_size(t) - 1]);
            assert!(matches!(short, Message::Malformed { .. }), "{name}");
        }
        assert_eq!(message_index(MSG_NOP), MESSAGE_TYPES.len());
    }

    fn payload_size(t: u16) -> usize {
        match t {
            MSG_TASK_NEW => size_of::<GhostMsgPayloadTaskNew>(),
            MSG_TASK_WAKEUP => size_of::<GhostMsgPayloadTaskWakeup>(),
            MSG_TASK_BLOCKED => size_of::<GhostMsgPayloadTaskBlocked>(),
            MSG_TASK_PREEMPT => size_of::<GhostMsgPayloadTaskPreempt>(),
            MSG_TASK_YIELD => size_of::<GhostMsgPayloadTaskYield>(),
            MSG_TASK_DEAD => size_of::<GhostMsgPayloadTaskDead>(),
            MSG_TASK_DEPARTED => size_of::<GhostMsgPayloadTaskDeparted>(),
            MSG_TASK_SWITCHTO => size_of::<GhostMsgPayloadTaskSwitchto>(),
            MSG_TASK_AFFINITY_CHANGED => size_of::<GhostMsgPayloadTaskAffinityChanged>(),
            MSG_TASK_ON_CPU => size_of::<GhostMsgPayloadTaskOnCpu>(),
            MSG_TASK_PRIORITY_CHANGED => size_of::<GhostMsgPayloadTaskPriorityChanged>(),
            MSG_TASK_LATCH_FAILURE => size_of::<GhostMsgPayloadTaskLatchFailure>(),
            MSG_CPU_TICK => size_of::<GhostMsgPayloadCpuTick>(),
            MSG_CPU_TIMER_EXPIRED => size_of::<GhostMsgPayloadTimer>(),
            MSG_CPU_NOT_IDLE => size_of::<GhostMsgPayloadCpuNotIdle>(),
            _ => 4,
        }
    }

    #[test]
    fn ring_header_is_checked() {
        let (version, start, nelems) = (
            offset_of!(GhostQueueHeader, version),
            offset_of!(GhostQueueHeader, start),
            offset_of!(GhostQueueHeader, nelems),
        );
        let refused = |field: usize, v: u32, want: u32| {
            let m = Mapping::anonymous(mapsize(64)).unwrap();
            m.write_u32(start, 64);
            m.write_u32(nelems, 64);
            m.write_u32(field, v);
            Ring::new(m, want).is_err()
        };
        assert!(!refused(version, 0, 64));
        assert!(refused(version, 1, 64));
        assert!(refused(nelems, 32, 64));
        assert!(refused(start, 4000, 64));
        assert!(refused(start, 66, 64));
        assert!(refused(start, 8, 64));
        assert!(refused(nelems, 48, 48));
        assert!(refused(nelems, 1 << 17, 1 << 17));
    }
}
