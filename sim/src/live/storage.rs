//! Storage over a run, for soaks: the records the store holds per key,
//! sampled while the producers run, so a long run shows whether storage
//! grows with history (issue 14's bounded storage) or stays flat.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atmostonce::DurableStore;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::workload::NAMESPACE;

/// How often the store is read: often enough for a few samples per
/// minute of a soak, rarely enough that the scan (which reads every record
/// of the namespace) stays a small part of the store's load.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// What the store held at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageSample {
    /// Microseconds since the run started.
    pub at_us: u64,
    /// Streams (keys seen) under the run's namespace.
    pub streams: usize,
    /// Records in them.
    pub records: usize,
    /// Streams of the workload's own keys (`--keys`, not the fresh ones)
    /// that the store holds.
    pub workload_streams: usize,
    /// Records in them.
    pub workload_records: usize,
}

impl StorageSample {
    /// Records per stream the store holds, fresh keys' included (0 for
    /// an empty store): with fresh keys, each of which ends with one or
    /// two records, this tends to their count whatever the hot keys hold.
    #[must_use]
    pub fn records_per_key(&self) -> f64 {
        ratio(self.records, self.streams)
    }

    /// Records per stream of the workload's own keys: the hot keys'
    /// storage, which grows with their history unless compaction bounds it.
    #[must_use]
    pub fn records_per_workload_key(&self) -> f64 {
        ratio(self.workload_records, self.workload_streams)
    }
}

fn ratio(records: usize, streams: usize) -> f64 {
    if streams == 0 {
        0.0
    } else {
        records as f64 / streams as f64
    }
}

/// Reads `store` every [`SAMPLE_EVERY`] until `off` says the main phase is
/// over, appending a sample to `samples` per read that succeeded (a store
/// that is down for a crash is skipped, not waited for).
pub(crate) async fn sample_storage(
    store: Arc<dyn DurableStore>,
    workload_streams: BTreeSet<String>,
    started: Instant,
    samples: Arc<Mutex<Vec<StorageSample>>>,
    mut off: watch::Receiver<bool>,
) {
    let prefix = format!("{NAMESPACE}:");
    loop {
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = off.changed() => return,
        }
        if *off.borrow() {
            return;
        }
        let at_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Ok(entries) = store.scan(&prefix).await {
            let streams: BTreeSet<&str> =
                entries.iter().map(|entry| entry.stream.as_str()).collect();
            let workload_records = entries
                .iter()
                .filter(|entry| workload_streams.contains(&entry.stream))
                .count();
            samples.lock().push(StorageSample {
                at_us,
                streams: streams.len(),
                records: entries.len(),
                workload_streams: streams
                    .iter()
                    .filter(|stream| workload_streams.contains(**stream))
                    .count(),
                workload_records,
            });
        }
    }
}

/// The last sample of each minute of the run that has one, as
/// `(minute, sample)`.
#[must_use]
pub fn per_minute(samples: &[StorageSample]) -> Vec<(u64, StorageSample)> {
    let mut minutes: std::collections::BTreeMap<u64, StorageSample> =
        std::collections::BTreeMap::new();
    for sample in samples {
        let minute = sample.at_us / 60_000_000;
        let kept = minutes.entry(minute).or_insert(*sample);
        if sample.at_us >= kept.at_us {
            *kept = *sample;
        }
    }
    minutes.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::{StorageSample, per_minute};

    fn sample(at_s: u64, streams: usize, records: usize) -> StorageSample {
        StorageSample {
            at_us: at_s * 1_000_000,
            streams,
            records,
            workload_streams: 2,
            workload_records: 2 * records,
        }
    }

    #[test]
    fn storage_is_reported_by_the_last_sample_of_each_minute() {
        let samples = [
            sample(10, 4, 8),
            sample(50, 4, 40),
            sample(70, 5, 10),
            sample(185, 6, 12),
        ];
        assert_eq!(
            per_minute(&samples),
            vec![(0, samples[1]), (1, samples[2]), (3, samples[3])]
        );
        assert!((samples[1].records_per_key() - 10.0).abs() < 1e-9);
        assert!((samples[1].records_per_workload_key() - 40.0).abs() < 1e-9);
        assert!(
            StorageSample {
                at_us: 0,
                streams: 0,
                records: 0,
                workload_streams: 0,
                workload_records: 0,
            }
            .records_per_key()
            .abs()
                < 1e-9
        );
    }
}
