//! Where the process is in its life: serving, or draining after SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set on SIGTERM: `/ready` answers 503 and responses close their connection, so a
/// load balancer stops sending before the server drains.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    /// Whether the process is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts the shutdown: from now on `/ready` answers 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}
