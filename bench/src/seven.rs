//! The seven monitor kinds as the benchmarks set them on the `bench` organization: hours
//! long enough that a fresh fill crosses nothing at first.

use postdesk_store::{Monitor, MonitorKind};

pub fn seven_monitors() -> Vec<Monitor> {
    let monitor = Monitor::new;
    vec![
        monitor(MonitorKind::PastDue, None),
        monitor(MonitorKind::DueIn, Some(24)),
        monitor(MonitorKind::Unassigned, Some(48)),
        monitor(MonitorKind::Open, Some(400)),
        monitor(MonitorKind::Inactive, Some(300)),
        monitor(MonitorKind::Stale, Some(49)),
        monitor(MonitorKind::Waiting, Some(24)),
    ]
}
