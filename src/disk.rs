//! The low-disk guard: whether the server may take new mail now.
//!
//! It reads the free space of the data directory's file system (at most
//! every 50 ms, a `statvfs`) and remembers when a write last failed for
//! want of space; [`crate::domain::storage::admission`] decides. SMTP asks
//! it before each new transaction, IMAP before an APPEND, `postdesk status`
//! shows what it sees. The decision changes are logged loudly, once each.

use crate::domain::storage::{self, Refusal, SpaceFacts};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a reading of the free space is trusted. Short: a `statvfs`
/// costs about a microsecond, and mail arriving at a few hundred messages a
/// second can fill a small margin within a second.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

pub struct DiskGuard {
    path: PathBuf,
    floor: u64,
    state: Mutex<GuardState>,
}

#[derive(Default)]
struct GuardState {
    sampled: Option<(Instant, Option<u64>)>,
    last_full: Option<Instant>,
    /// The last answer, to log only its changes.
    refusing: bool,
}

/// What the guard sees, for `postdesk status` and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStatus {
    pub available: Option<u64>,
    pub floor: u64,
    pub refusal: Option<Refusal>,
}

impl DiskGuard {
    /// Guards the file system holding `path` with a floor of `min_free_mb`.
    pub fn new(path: impl Into<PathBuf>, min_free_mb: u64) -> DiskGuard {
        DiskGuard {
            path: path.into(),
            floor: storage::floor_bytes(min_free_mb),
            state: Mutex::new(GuardState::default()),
        }
    }

    /// Whether new mail may be accepted now.
    pub fn admit(&self) -> Result<(), Refusal> {
        match self.status().refusal {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// A write failed for want of space: refuse new mail for a moment.
    pub fn write_failed(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.last_full = Some(Instant::now());
            // Read the free space again on the next question.
            state.sampled = None;
        }
    }

    pub fn status(&self) -> DiskStatus {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return DiskStatus {
                available: None,
                floor: self.floor,
                refusal: None,
            };
        };
        let available = match state.sampled {
            Some((at, available)) if now.duration_since(at) < SAMPLE_EVERY => available,
            _ => {
                let available = match fs4::available_space(&self.path) {
                    Ok(bytes) => Some(bytes),
                    Err(err) => {
                        tracing::debug!(path = %self.path.display(), %err, "free space unknown");
                        None
                    }
                };
                state.sampled = Some((now, available));
                available
            }
        };
        let refusal = storage::admission(SpaceFacts {
            available,
            floor: self.floor,
            since_full: state.last_full.map(|at| now.duration_since(at)),
        })
        .err();
        if refusal.is_some() != state.refusing {
            state.refusing = refusal.is_some();
            match refusal {
                Some(refusal) => tracing::error!(
                    path = %self.path.display(),
                    "REFUSING NEW MAIL (452 4.3.1): {refusal}"
                ),
                None => tracing::warn!(path = %self.path.display(), "accepting new mail again"),
            }
        }
        DiskStatus {
            available,
            floor: self.floor,
            refusal,
        }
    }
}
