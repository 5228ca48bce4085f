//! The store conformance suite: the checks every [`DurableStore`] must pass.
//!
//! A backend author runs [`run_all`] against a fresh or shared store (every
//! check writes only streams under the given prefix, so a store that already
//! holds data can be checked) and asserts that the report has no failures:
//!
//! ```
//! use atmostonce::{MemoryStore, conformance};
//!
//! let store = MemoryStore::new();
//! let report = futures::executor::block_on(conformance::run_all(&store, "conformance"));
//! assert!(report.passed(), "{report}");
//! assert_eq!(report.results.len(), conformance::CHECK_NAMES.len());
//! ```
//!
//! The checks run one after another on one task; concurrency is a property
//! each backend's own tests establish (the contract demands appends to one
//! stream be linearizable across every process that shares the store).

mod heads;

pub use heads::RequiredCallsOnly;

use std::fmt;

use crate::DurabilityError;
use crate::store::{DurableStore, ScannedEntry, StoredEntry};

/// The names of the checks, in the order [`run_all`] runs them.
pub const CHECK_NAMES: [&str; 14] = [
    "the first append to a stream is sequence 0",
    "appends return consecutive sequences",
    "an append ahead of the stream conflicts and reports both sequences",
    "an append behind the stream conflicts and reports both sequences",
    "a conflicting append leaves the stream untouched",
    "read_from honours offsets and limits",
    "payloads come back byte for byte",
    "streams are independent",
    "scan returns the prefix's streams by name then sequence",
    "flush keeps every acknowledged append readable",
    "stream names are compared as bytes: case, wildcards and NUL are plain bytes",
    "read_head answers the last entry and the length",
    "scan_heads pages the prefix's heads by name, after the cursor",
    "compact keeps the last entry, the length and every entry from the bound",
];

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's name (one of [`CHECK_NAMES`]).
    pub name: &'static str,
    /// `Err` says what the store did wrong.
    pub outcome: Result<(), String>,
}

/// The outcome of every check.
#[derive(Debug, Clone, Default)]
pub struct ConformanceReport {
    /// One result per check, in [`CHECK_NAMES`] order.
    pub results: Vec<CheckResult>,
}

impl ConformanceReport {
    /// True when every check passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.results.iter().all(|result| result.outcome.is_ok())
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|result| result.outcome.is_err())
    }
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for result in &self.results {
            match &result.outcome {
                Ok(()) => writeln!(f, "pass: {}", result.name)?,
                Err(why) => writeln!(f, "FAIL: {}: {why}", result.name)?,
            }
        }
        Ok(())
    }
}

type CheckOutcome = Result<(), String>;

/// Runs every check against `store`, writing only streams whose names start
/// with `"{prefix}/"`. Use a prefix no other writer uses (a fresh one per
/// run on a shared database).
pub async fn run_all(store: &dyn DurableStore, prefix: &str) -> ConformanceReport {
    let p = |name: &str| format!("{prefix}/{name}");
    let mut report = ConformanceReport::default();
    let outcomes: [CheckOutcome; 14] = [
        first_append_is_zero(store, &p("first")).await,
        appends_are_consecutive(store, &p("consecutive")).await,
        ahead_conflicts(store, &p("ahead")).await,
        behind_conflicts(store, &p("behind")).await,
        conflict_leaves_stream_untouched(store, &p("untouched")).await,
        read_from_offsets_and_limits(store, &p("reads")).await,
        payloads_are_exact(store, &p("payloads")).await,
        streams_are_independent(store, &p("independent-a"), &p("independent-b")).await,
        scan_by_prefix(store, &p("scan")).await,
        flush_keeps_appends(store, &p("flush")).await,
        names_are_bytes(store, &p("names")).await,
        heads::read_head_answers_the_last_entry(store, &p("head")).await,
        heads::scan_heads_pages_by_name(store, &p("heads")).await,
        heads::compact_keeps_the_head(store, &p("compact")).await,
    ];
    for (name, outcome) in CHECK_NAMES.into_iter().zip(outcomes) {
        report.results.push(CheckResult { name, outcome });
    }
    report
}

fn expect_eq<T: PartialEq + fmt::Debug>(what: &str, actual: T, expected: T) -> CheckOutcome {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: got {actual:?}, expected {expected:?}"))
    }
}

fn ok<T>(what: &str, result: Result<T, DurabilityError>) -> Result<T, String> {
    result.map_err(|error| format!("{what} failed: {error}"))
}

async fn append_n(store: &dyn DurableStore, stream: &str, count: u64) -> CheckOutcome {
    for sequence in 0..count {
        let payload = format!("{stream}#{sequence}");
        let assigned = ok(
            "append",
            store.append(stream, payload.as_bytes(), sequence).await,
        )?;
        expect_eq("assigned sequence", assigned, sequence)?;
    }
    Ok(())
}

fn payloads(entries: &[StoredEntry]) -> Vec<(u64, Vec<u8>)> {
    entries
        .iter()
        .map(|entry| (entry.sequence, entry.payload.clone()))
        .collect()
}

fn expected_payloads(stream: &str, range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
    range
        .map(|sequence| (sequence, format!("{stream}#{sequence}").into_bytes()))
        .collect()
}

async fn first_append_is_zero(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    let empty = ok(
        "read of a stream never written",
        store.read_from(stream, 0, 10).await,
    )?;
    expect_eq("entries of a stream never written", empty.len(), 0)?;
    let assigned = ok("first append", store.append(stream, b"first", 0).await)?;
    expect_eq("sequence of the first append", assigned, 0)
}

async fn appends_are_consecutive(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    append_n(store, stream, 5).await?;
    let entries = ok("read", store.read_from(stream, 0, 100).await)?;
    expect_eq(
        "entries",
        payloads(&entries),
        expected_payloads(stream, 0..5),
    )
}

async fn ahead_conflicts(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    append_n(store, stream, 2).await?;
    expect_eq(
        "append at 5 to a stream of 2",
        store.append(stream, b"x", 5).await,
        Err(DurabilityError::SequenceConflict {
            expected: 5,
            actual: 2,
        }),
    )
}

async fn behind_conflicts(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    append_n(store, stream, 3).await?;
    expect_eq(
        "append at 1 to a stream of 3",
        store.append(stream, b"x", 1).await,
        Err(DurabilityError::SequenceConflict {
            expected: 1,
            actual: 3,
        }),
    )?;
    expect_eq(
        "append at 0 to a stream of 3",
        store.append(stream, b"x", 0).await,
        Err(DurabilityError::SequenceConflict {
            expected: 0,
            actual: 3,
        }),
    )
}

async fn conflict_leaves_stream_untouched(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    append_n(store, stream, 2).await?;
    let _ = store.append(stream, b"loser", 1).await;
    let _ = store.append(stream, b"loser", 7).await;
    let entries = ok("read", store.read_from(stream, 0, 100).await)?;
    expect_eq(
        "entries after refused appends",
        payloads(&entries),
        expected_payloads(stream, 0..2),
    )?;
    let assigned = ok(
        "append at the real head",
        store.append(stream, b"winner", 2).await,
    )?;
    expect_eq("sequence after refused appends", assigned, 2)
}

async fn read_from_offsets_and_limits(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    append_n(store, stream, 10).await?;
    let cases: [(u64, usize, std::ops::Range<u64>); 7] = [
        (0, 100, 0..10),
        (0, 3, 0..3),
        (4, 3, 4..7),
        (8, 5, 8..10),
        (9, 1, 9..10),
        (10, 5, 10..10),
        (3, 0, 3..3),
    ];
    for (offset, limit, expected) in cases {
        let entries = ok("read", store.read_from(stream, offset, limit).await)?;
        expect_eq(
            &format!("read_from(offset {offset}, limit {limit})"),
            payloads(&entries),
            expected_payloads(stream, expected),
        )?;
    }
    let beyond = ok(
        "read far beyond the end",
        store.read_from(stream, u64::MAX, 5).await,
    )?;
    expect_eq("entries read from offset u64::MAX", beyond.len(), 0)
}

async fn payloads_are_exact(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    let binary: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect();
    let cases: [&[u8]; 4] = [b"", &binary, &large, "ключ-🔑".as_bytes()];
    for (sequence, payload) in cases.iter().enumerate() {
        ok(
            "append",
            store.append(stream, payload, sequence as u64).await,
        )?;
    }
    let entries = ok("read", store.read_from(stream, 0, 10).await)?;
    expect_eq("entry count", entries.len(), cases.len())?;
    for (entry, payload) in entries.iter().zip(cases) {
        if entry.payload != payload {
            return Err(format!(
                "payload of sequence {} changed: {} bytes stored, {} bytes read back",
                entry.sequence,
                payload.len(),
                entry.payload.len()
            ));
        }
    }
    Ok(())
}

async fn streams_are_independent(store: &dyn DurableStore, a: &str, b: &str) -> CheckOutcome {
    append_n(store, a, 3).await?;
    let assigned = ok(
        "first append to a second stream",
        store.append(b, b"b0", 0).await,
    )?;
    expect_eq("sequence in the second stream", assigned, 0)?;
    let entries = ok("read", store.read_from(a, 0, 100).await)?;
    expect_eq(
        "first stream",
        payloads(&entries),
        expected_payloads(a, 0..3),
    )
}

async fn scan_by_prefix(store: &dyn DurableStore, base: &str) -> CheckOutcome {
    let in_prefix = [
        format!("{base}:b"),
        format!("{base}:a"),
        format!("{base}:ab"),
    ];
    let outside = [format!("{base}-other:a"), base.to_string()];
    for (index, stream) in in_prefix.iter().enumerate() {
        append_n(store, stream, index as u64 + 1).await?;
    }
    for stream in &outside {
        append_n(store, stream, 1).await?;
    }
    let scanned = ok("scan", store.scan(&format!("{base}:")).await)?;
    let got: Vec<(String, u64)> = scanned
        .iter()
        .map(|ScannedEntry { stream, entry }| (stream.clone(), entry.sequence))
        .collect();
    let expected = vec![
        (format!("{base}:a"), 0),
        (format!("{base}:a"), 1),
        (format!("{base}:ab"), 0),
        (format!("{base}:ab"), 1),
        (format!("{base}:ab"), 2),
        (format!("{base}:b"), 0),
    ];
    expect_eq("scanned (stream, sequence) pairs", got, expected)?;
    for scanned_entry in &scanned {
        let expected = format!("{}#{}", scanned_entry.stream, scanned_entry.entry.sequence);
        if scanned_entry.entry.payload != expected.as_bytes() {
            return Err(format!(
                "scan returned the wrong payload for {} sequence {}",
                scanned_entry.stream, scanned_entry.entry.sequence
            ));
        }
    }
    let none = ok(
        "scan of an unused prefix",
        store.scan(&format!("{base}:zz")).await,
    )?;
    expect_eq("entries under an unused prefix", none.len(), 0)
}

async fn flush_keeps_appends(store: &dyn DurableStore, stream: &str) -> CheckOutcome {
    append_n(store, stream, 3).await?;
    ok("flush", store.flush().await)?;
    ok("second flush", store.flush().await)?;
    let entries = ok("read after flush", store.read_from(stream, 0, 100).await)?;
    expect_eq(
        "entries after flush",
        payloads(&entries),
        expected_payloads(stream, 0..3),
    )
}

/// A backend that stores names in a collated text column, matches prefixes
/// with `LIKE`, or uses NUL as a separator gets these wrong.
async fn names_are_bytes(store: &dyn DurableStore, base: &str) -> CheckOutcome {
    let mut names: Vec<String> = ["B", "a", "a%", "a_", "a\0", "a\u{1}", "ä", "a%b"]
        .iter()
        .map(|suffix| format!("{base}:{suffix}"))
        .collect();
    for name in &names {
        append_n(store, name, 1).await?;
    }
    for name in &names {
        let entries = ok("read", store.read_from(name, 0, 10).await)?;
        expect_eq(
            &format!("entries of stream {name:?}"),
            payloads(&entries),
            expected_payloads(name, 0..1),
        )?;
    }
    names.sort(); // byte order
    let scanned = ok("scan", store.scan(&format!("{base}:")).await)?;
    let got: Vec<&str> = scanned.iter().map(|entry| entry.stream.as_str()).collect();
    expect_eq(
        "streams scanned, in byte order",
        got,
        names.iter().map(String::as_str).collect(),
    )?;
    for (prefix, expected) in [
        ("a%", vec!["a%", "a%b"]),
        ("a_", vec!["a_"]),
        ("a\0", vec!["a\0"]),
    ] {
        let prefix = format!("{base}:{prefix}");
        let scanned = ok("scan", store.scan(&prefix).await)?;
        let got: Vec<&str> = scanned.iter().map(|entry| entry.stream.as_str()).collect();
        let expected: Vec<String> = expected
            .iter()
            .map(|name| format!("{base}:{name}"))
            .collect();
        expect_eq(
            &format!("streams scanned under {prefix:?}"),
            got,
            expected.iter().map(String::as_str).collect(),
        )?;
    }
    Ok(())
}
