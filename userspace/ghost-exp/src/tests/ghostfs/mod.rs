//! ghostfs: the root and its files, enclaves, tasks and gtids, the mappings
//! shared with agents, ioctls and queues.

pub(crate) mod enclave;
pub(crate) mod lifecycle;
pub(crate) mod mapped;
pub(crate) mod root;
