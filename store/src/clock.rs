//! The injected clock: everything that stamps or expires uses it, so tests can move time.

use time::OffsetDateTime;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The wall clock moved by the whole seconds written in a file (absent or unreadable
/// counts as 0), read at every call: lets an end-to-end test move a running server's time.
#[derive(Debug, Clone)]
pub struct OffsetFileClock {
    pub path: std::path::PathBuf,
}

impl Clock for OffsetFileClock {
    fn now(&self) -> OffsetDateTime {
        let offset = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        OffsetDateTime::now_utc() + time::Duration::seconds(offset)
    }
}
