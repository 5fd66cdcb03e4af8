//! Fault injection: agents killed and enclaves destroyed under load, churn
//! and memory pressure (`load`); races of kills, exits, hotplug and
//! destroys (`races`).

pub(crate) mod load;
pub(crate) mod races;
