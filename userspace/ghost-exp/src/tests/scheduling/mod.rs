//! Scheduling: real tasks scheduled by agents: the raw-ABI agent of the
//! tests (`agent`), transaction outcomes and CPU messages (`lab`), and the
//! bundled binaries (`bundled`: `ghost-agent`, `ghostctl`, upgrades), and
//! ghost beside a sched_ext BPF scheduler (`scx`, on the bench kernel).

pub(crate) mod agent;
pub(crate) mod bundled;
pub(crate) mod ghostctl_run;
pub(crate) mod lab;
pub(crate) mod policies;
pub(crate) mod scx;
