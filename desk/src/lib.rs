//! The desk: every change to a ticket and every view of one, between the store and the
//! edges (web pages, the JSON API, staff mail commands, the CLI). Commands and queries ask
//! the one policy, stamp events with the injected clock, and run store work off the async
//! threads; edges parse their input into these types and render what comes back.

pub mod access;
pub mod address;
pub mod audit;
mod bell;
pub mod costs;
pub mod dashboard;
mod deletion;
pub mod downloads;
pub mod employees;
pub mod error;
pub mod exports;
pub mod fields;
pub mod files;
#[cfg(test)]
mod fixtures;
pub mod held;
pub mod hosts;
pub mod lists;
pub mod mail_logs;
pub mod metrics;
pub mod model;
pub mod monitors;
pub mod opening;
pub mod operator;
pub mod organizations;
pub mod people;
pub mod policy;
pub mod portal;
pub mod quotas;
pub mod reports;
pub mod retention;
mod service;
pub mod tickets;
pub mod tokens;
pub mod unsubscribe;

pub use error::{DeskError, DeskResult};
pub use service::Desk;
