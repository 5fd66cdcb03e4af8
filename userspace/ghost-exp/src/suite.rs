//! The in-VM integration tests: real processes against the running kernel.
//!
//! Every test returns `Err(reason)` on failure; a panic inside a test is
//! caught and reported as a failure too, so one broken test cannot hide the
//! others.

use crate::fuzz;
use crate::harness::figures::Snapshot;
use crate::harness::sys::{self};
use crate::harness::{destroy_all_enclaves, Test};
use crate::tests::conformance::{abi91, agent_api, c_program, capabilities, timerfd};
use crate::tests::faults::{load, races};
use crate::tests::ghostfs::{enclave, lifecycle, mapped, root};
use crate::tests::scheduling::{agent as scheduling, bundled, ghostctl_run, lab, policies, scx};
use std::time::Instant;

/// Every test, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "kernel_is_ghost",
        run: root::kernel_is_ghost,
    },
    Test {
        name: "sched_classes_registered",
        run: root::sched_classes_registered,
    },
    Test {
        name: "ghostfs_mount_point_exists",
        run: root::ghostfs_mount_point_exists,
    },
    Test {
        name: "ghostfs_mount",
        run: root::ghostfs_mount,
    },
    Test {
        name: "ghostfs_second_mount_harmless",
        run: root::ghostfs_second_mount_harmless,
    },
    Test {
        name: "ghostfs_root_files",
        run: root::ghostfs_root_files,
    },
    Test {
        name: "version_reads_91",
        run: root::version_reads_91,
    },
    Test {
        name: "root_ctl_rejects_bad_input",
        run: root::root_ctl_rejects_bad_input,
    },
    Test {
        name: "setscheduler_ghost_refused",
        run: root::setscheduler_ghost_refused,
    },
    Test {
        name: "enclave_create_destroy",
        run: enclave::enclave_create_destroy,
    },
    Test {
        name: "enclave_ctl_rejects_bad_input",
        run: enclave::enclave_ctl_rejects_bad_input,
    },
    Test {
        name: "enclave_open_files_survive_destroy",
        run: enclave::enclave_open_files_survive_destroy,
    },
    Test {
        name: "enclave_unprivileged_refused",
        run: enclave::enclave_unprivileged_refused,
    },
    Test {
        name: "enclave_tunables",
        run: enclave::enclave_tunables,
    },
    Test {
        name: "enclave_cpus",
        run: enclave::enclave_cpus,
    },
    Test {
        name: "enclave_agent_online",
        run: enclave::enclave_agent_online,
    },
    Test {
        name: "cpu_data_mmap",
        run: mapped::cpu_data_mmap,
    },
    Test {
        name: "sw_region_mmap",
        run: mapped::sw_region_mmap,
    },
    Test {
        name: "ctl_ioctls_and_queues",
        run: mapped::ctl_ioctls_and_queues,
    },
    Test {
        name: "mappings_revoked_at_destroy",
        run: mapped::mappings_revoked_at_destroy,
    },
    Test {
        name: "gtid_assigned_at_fork",
        run: lifecycle::gtid_assigned_at_fork,
    },
    Test {
        name: "tasks_file",
        run: lifecycle::tasks_file,
    },
    Test {
        name: "ephemeral_enclave",
        run: lifecycle::ephemeral_enclave,
    },
    Test {
        name: "bad_input_every_file",
        run: lifecycle::bad_input_every_file,
    },
    Test {
        name: "agent_schedules_tasks",
        run: scheduling::agent_schedules_tasks,
    },
    Test {
        name: "agent_takeover_and_errors",
        run: scheduling::agent_takeover_and_errors,
    },
    Test {
        name: "txn_outcomes_and_cpu_messages",
        run: lab::txn_outcomes_and_cpu_messages,
    },
    Test {
        name: "departed_word_gates_reentry",
        run: lab::departed_word_gates_reentry,
    },
    Test {
        name: "reentry_races_the_word_free",
        run: lab::reentry_races_the_word_free,
    },
    Test {
        name: "ping_wakes_blocked_agent",
        run: lab::ping_wakes_blocked_agent,
    },
    Test {
        name: "watchdog_destroys_stuck_enclave",
        run: lab::watchdog_destroys_stuck_enclave,
    },
    Test {
        name: "cpu_hotplug_refused",
        run: lab::cpu_hotplug_refused,
    },
    Test {
        name: "agent_fifo_runs_simple_exp",
        run: bundled::agent_fifo_runs_simple_exp,
    },
    Test {
        name: "agent_fifo_central_runs_simple_exp",
        run: bundled::agent_fifo_central_runs_simple_exp,
    },
    Test {
        name: "agent_shinjuku_runs_simple_exp",
        run: bundled::agent_shinjuku_runs_simple_exp,
    },
    Test {
        name: "agent_sol_runs_simple_exp",
        run: bundled::agent_sol_runs_simple_exp,
    },
    Test {
        name: "agent_fair_runs_simple_exp",
        run: bundled::agent_fair_runs_simple_exp,
    },
    Test {
        name: "agent_edf_runs_simple_exp",
        run: bundled::agent_edf_runs_simple_exp,
    },
    Test {
        name: "ghostctl_drives_live_enclave",
        run: bundled::ghostctl_drives_live_enclave,
    },
    Test {
        name: "agent_upgrade_in_place",
        run: bundled::agent_upgrade_in_place,
    },
    Test {
        name: "agent_ctrl_c_leaves_tasks_running",
        run: bundled::agent_ctrl_c_leaves_tasks_running,
    },
    Test {
        name: "scx_switch_all_beside_ghost",
        run: scx::scx_switch_all_beside_ghost,
    },
    Test {
        name: "scx_partial_beside_ghost",
        run: scx::scx_partial_beside_ghost,
    },
    Test {
        name: "create_destroy_cycles_memory",
        run: lifecycle::create_destroy_cycles_memory,
    },
];

/// Every test, in the order they run: the core tests above, then the
/// conformance suite, the ABI 91 semantics, fault injection and the fuzzer,
/// each module with its own list.
pub fn all() -> impl Iterator<Item = &'static Test> {
    TESTS
        .iter()
        .chain(ghostctl_run::TESTS)
        .chain(policies::TESTS)
        .chain(agent_api::TESTS)
        .chain(c_program::TESTS)
        .chain(capabilities::TESTS)
        .chain(abi91::TESTS)
        .chain(timerfd::TESTS)
        .chain(load::TESTS)
        .chain(races::TESTS)
        .chain(fuzz::TESTS)
        .chain(races::LAST)
}

/// The threads still in the ghost class (policy 18) once every enclave is
/// gone, as `tid (comm)`. Destroy moves every task of an enclave to CFS, so
/// any such thread is a task lost by the kernel.
fn lost_ghost_tasks() -> Vec<String> {
    sys::threads_where(|tid| sys::sched_policy(tid) == ghost_abi::SCHED_GHOST)
}

/// Runs the tests whose name contains `filter` (or one of its comma-separated
/// parts); true if all passed.
///
/// After each test every enclave is destroyed and the test's leftover
/// children are killed; then no thread may be left in the ghost class. The
/// figures the tests counted are printed as `FIGURES` lines for
/// `scripts/test`'s reliability table.
pub fn run(filter: &str) -> bool {
    let (mut passed, mut failed) = (0, 0);
    let first = Snapshot::now();
    let mut lost_total = 0;
    for t in all().filter(|t| filter.split(',').any(|f| t.name.contains(f))) {
        let start = Instant::now();
        let before = Snapshot::now();
        let result = std::panic::catch_unwind(t.run).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        });
        // Every test cleans up after itself: enclaves left behind would
        // hold CPUs and ids that later tests need.
        let left = destroy_all_enclaves();
        sys::kill_leftover_children();
        let lost = lost_ghost_tasks();
        lost_total += lost.len();
        let result = match (result, left) {
            (Ok(()), _) if !lost.is_empty() => Err(format!(
                "threads left in the ghost class with no enclave: {}",
                lost.join(" ")
            )),
            (Ok(()), Ok(left)) if !left.is_empty() => {
                Err(format!("left enclaves behind: {}", left.join(" ")))
            }
            (Ok(()), Err(e)) => Err(e),
            (result, _) => result,
        };
        let counted = Snapshot::now().since(before);
        if counted != Snapshot::default() {
            println!("FIGURES test={} {}", t.name, counted.line());
        }
        match result {
            Ok(()) => {
                passed += 1;
                println!("PASS {} ({} ms)", t.name, start.elapsed().as_millis());
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {}: {}", t.name, why);
            }
        }
    }
    println!(
        "FIGURES total {} lost={lost_total}",
        Snapshot::now().since(first).line()
    );
    println!("suite: {passed} tests passed, {failed} tests failed");
    failed == 0 && passed > 0
}
