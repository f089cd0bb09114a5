//! The outbound layer: everything a job that fetches over HTTP shares.
//!
//! * [`scheduler`]: the fixed-rate job scheduler (poll targets, collectors,
//!   providers).
pub mod scheduler;
