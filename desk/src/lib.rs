//! The desk: what may be done to tickets and by whom. For now its one policy, asked by every
//! edge (web pages, the JSON API, staff mail commands in the pipeline, the notifier), and
//! what becomes of mail held from non-participants, and which hosts are local.

pub mod held;
pub mod hosts;
pub mod policy;
