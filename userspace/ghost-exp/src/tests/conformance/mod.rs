//! Conformance with ghOSt: its `agent_test`/`api_test` (`agent_api`),
//! `enclave_test`/`capabilities_test` (`capabilities`), the C program built
//! against the uapi header only (`c_program`), and the ABI 91 semantics
//! (`abi91`), ghost timerfds and greedy commit points (`timerfd`).

pub(crate) mod abi91;
pub(crate) mod agent_api;
pub(crate) mod c_program;
pub(crate) mod capabilities;
pub(crate) mod timerfd;
