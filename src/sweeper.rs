//! [`DedupSweeper`]: expires old entries and stuck claims.

use std::sync::Arc;
use std::time::Duration;

use crate::DurabilityError;
use crate::cache::DedupCache;
use crate::core::DedupSweepReport;
use crate::driver::drive_watched;
use crate::telemetry::OpKind;

/// Expires entries whose TTL has passed: completed keys become claimable
/// again, and claims whose holder crashed stop blocking their key.
///
/// The sweeper owns no timer (the engine depends on no async runtime): call
/// [`sweep_once`](DedupSweeper::sweep_once) every
/// [`sweep_interval`](DedupSweeper::sweep_interval) from your runtime.
#[derive(Debug, Clone)]
pub struct DedupSweeper {
    cache: DedupCache,
    ttl: Duration,
    sweep_interval: Duration,
}

impl DedupSweeper {
    /// A sweeper for `cache`'s namespace. An entry expires once
    /// `now > timestamp + ttl + 1000 ms` (the clock-skew grace).
    pub fn new(
        cache: impl Into<DedupCache>,
        ttl: Duration,
        sweep_interval: Duration,
    ) -> DedupSweeper {
        DedupSweeper {
            cache: cache.into(),
            ttl,
            sweep_interval,
        }
    }

    /// The time-to-live of entries.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often the caller is meant to sweep.
    #[must_use]
    pub fn sweep_interval(&self) -> Duration {
        self.sweep_interval
    }

    /// One sweep at `now_millis`: tombstones every key whose latest record is
    /// active and expired. Any store error or lost race ends the sweep with
    /// that error (tombstones already written stay written).
    pub async fn sweep_once(&self, now_millis: u64) -> Result<DedupSweepReport, DurabilityError> {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let watch = self.cache.watch(OpKind::Sweep, None);
        drive_watched(&**self.cache.store(), watch, || {
            Ok(self.cache.protocol()?.sweep(now_millis, ttl_ms))
        })
        .await
    }
}

impl From<Arc<DedupCache>> for DedupCache {
    fn from(cache: Arc<DedupCache>) -> DedupCache {
        (*cache).clone()
    }
}

impl From<&DedupCache> for DedupCache {
    fn from(cache: &DedupCache) -> DedupCache {
        cache.clone()
    }
}
