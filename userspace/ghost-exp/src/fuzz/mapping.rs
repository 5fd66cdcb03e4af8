//! The fuzz's mappings (the harness's [`Mapping`]), and `SIGBUS` on a
//! revoked one.

use super::{EXIT_REVOKED, EXIT_SIGBUS_LIVE, GHOSTFS};
pub(super) use crate::harness::mapped::{mmap_raw, Mapping as Map};

/// Installs the SIGBUS handler, knowing the mappings in `maps` (`(start,
/// len, enclave id)`): a fault in one of them exits [`EXIT_REVOKED`] if
/// its enclave is gone (destroyed: the mapping was revoked), else
/// [`EXIT_SIGBUS_LIVE`]; any other SIGBUS kills the process as usual.
pub(super) fn on_sigbus(maps: Vec<(usize, usize, u64)>) {
    let maps = maps
        .into_iter()
        .map(|(a, l, id)| (a, l, format!("{GHOSTFS}/enclave_{id}")))
        .collect();
    crate::harness::mapped::on_sigbus(maps, EXIT_REVOKED, EXIT_SIGBUS_LIVE);
}
