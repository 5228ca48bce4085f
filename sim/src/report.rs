//! Human and JSON reports of seeds: the verdict line, the configuration, a
//! readable timeline of the keys involved, and the reproduce command.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use atmostonce_verify::oracle::SpecOp;
use serde_json::{Value, json};

use crate::check::{CheckOptions, Verdict, Violation, a1_excused, show_answer};
use crate::config::{FaultSpec, Shape};
use crate::history::{Event, FaultEvent, History, KeyId, OpRecord};
use crate::outcome::{ConfigSource, InternalError, SeedRun, Summary};

mod summary;

pub use summary::{FailingSeed, InvariantCount, SeedRange, SummaryRecord, SweepIdentity};

/// Most timeline lines printed per key: enough to read a violation's
/// surroundings without drowning it in a hot key's hundreds of operations.
const MAX_TIMELINE_LINES: usize = 60;

/// The one-line command that reruns a seed exactly.
#[must_use]
pub fn reproduce_command(seed: u64, source: &ConfigSource, check: CheckOptions) -> String {
    let mut command = format!("cargo sim -- --seed {seed}");
    match source {
        ConfigSource::Draw { api, shape, faults } => {
            let _ = write!(command, " {} --api {api}", quote_faults(faults));
            if *shape != Shape::STANDARD {
                let _ = write!(
                    command,
                    " --producers {} --keys {} --ops {}",
                    shape.producers, shape.keys, shape.ops
                );
                if shape.fresh_pm > 0 {
                    let _ = write!(command, " --fresh-keys {}", shape.fresh_pm);
                }
            }
        }
        ConfigSource::Fixed(_) => {
            command = format!("cargo sim -- --replay <the replay file of seed {seed}>");
        }
    }
    if check.strict_reads {
        command.push_str(" --strict-reads");
    }
    command
}

/// `--faults SPEC`, or `--faults=SPEC` when SPEC starts with a `-` (so
/// that it is not read as a flag).
fn quote_faults(faults: &FaultSpec) -> String {
    let text = faults.to_string();
    if text.starts_with('-') {
        format!("--faults={text}")
    } else {
        format!("--faults {text}")
    }
}

fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// An operation in a few words: `claim(now=..)`, `complete(r=..)`.
#[must_use]
pub fn show_op(op: &OpRecord) -> String {
    match &op.op {
        SpecOp::Claim { now_millis } => format!("claim(now={now_millis})"),
        SpecOp::Lookup => "lookup".to_owned(),
        SpecOp::Complete {
            receipt,
            timestamp_millis,
        } => format!(
            "complete({}, ts={timestamp_millis})",
            String::from_utf8_lossy(receipt.as_bytes())
        ),
        SpecOp::Release => "release".to_owned(),
        SpecOp::Expire => "expire (sweeper tombstone)".to_owned(),
    }
}

/// The faults and deliveries that bear on `key`, with their times.
fn key_events(history: &History, key: KeyId) -> Vec<(u64, String)> {
    let stream = &history.streams[usize::from(key)];
    let processes: BTreeSet<_> = history.ops_of(key).map(|op| op.process).collect();
    let op_of_key = |op: &Option<u32>| {
        op.and_then(|id| history.ops.get(id as usize))
            .is_some_and(|op| op.key == key)
    };
    history
        .events
        .iter()
        .filter_map(|event| {
            let text = match event {
                Event::Delivery {
                    process,
                    key: delivered,
                    claim,
                    ok,
                    ..
                } if *delivered == key => format!(
                    "{process} {} ({})",
                    if *ok { "DELIVERED" } else { "delivery failed" },
                    crate::history::claim_label(*claim)
                ),
                Event::Fault { fault, .. } => match fault {
                    FaultEvent::ProducerCrash(process) if processes.contains(process) => {
                        format!("fault: {process} crashed")
                    }
                    FaultEvent::ProducerRestart(process) if processes.contains(process) => {
                        format!("fault: {process} restarted with no memory")
                    }
                    FaultEvent::ProducerPause(process, pause_ms) if processes.contains(process) => {
                        format!("fault: {process} paused for {pause_ms} ms")
                    }
                    FaultEvent::ProducerResume(process) if processes.contains(process) => {
                        format!("fault: {process} resumed")
                    }
                    FaultEvent::StoreCrash { dropped } => {
                        let lost: Vec<String> = dropped
                            .iter()
                            .filter(|(s, _)| s == stream)
                            .map(|(_, sequence)| sequence.to_string())
                            .collect();
                        format!(
                            "fault: store crash (this stream lost unflushed entries [{}])",
                            lost.join(",")
                        )
                    }
                    FaultEvent::StoreRestart => "fault: store restarted".to_owned(),
                    FaultEvent::StaleRead { op, hidden } if op_of_key(op) => format!(
                        "fault: stale read for op {} (hid {hidden} entries)",
                        op.unwrap_or_default()
                    ),
                    FaultEvent::StoreCallError { op, call, applied } if op_of_key(op) => format!(
                        "fault: {call} of op {} answered StoreError ({})",
                        op.unwrap_or_default(),
                        if *applied {
                            "it took effect"
                        } else {
                            "it did not take effect"
                        }
                    ),
                    FaultEvent::Corruption {
                        key: corrupted,
                        sequence,
                        how,
                        ..
                    } if *corrupted == key => {
                        format!("fault: record {sequence} corrupted ({how})")
                    }
                    FaultEvent::Compaction {
                        stream: compacted,
                        below_seq,
                        removed,
                    } if compacted == stream => format!(
                        "fault: janitor compacted the stream below {below_seq} ({removed} removed)"
                    ),
                    FaultEvent::QuietPhase => "quiet phase: faults stop".to_owned(),
                    FaultEvent::StoreCallFailed { op, call, error } if op_of_key(op) => format!(
                        "fault: {call} of op {} failed ({error}; whether it took effect is unknown)",
                        op.unwrap_or_default()
                    ),
                    FaultEvent::ConnectionsTerminated { count } => {
                        format!("fault: the server terminated {count} store connections")
                    }
                    _ => return None,
                },
                _ => return None,
            };
            Some((event.at_us(), text))
        })
        .collect()
}

/// A readable timeline of `key`: operations from invocation to response,
/// faults and deliveries, the operations in `involved` marked.
#[must_use]
pub fn key_timeline(history: &History, key: KeyId, involved: &[u32]) -> String {
    let mut lines: Vec<(u64, u64, String)> = history
        .ops_of(key)
        .map(|op| {
            let ret = op.ret_us.map_or_else(|| "   (none)".to_owned(), ms);
            let mut flags = String::new();
            if op.stale_read {
                flags.push_str(" [stale read]");
            }
            if op.dirty_read {
                flags.push_str(" [dirty read]");
            }
            let mark = if involved.contains(&op.id) {
                "▶"
            } else {
                " "
            };
            (
                op.call_us,
                u64::from(op.id),
                format!(
                    "{mark} {:>10} → {:>10}  {:<8} {:<40} {}{flags}  (op {})",
                    ms(op.call_us),
                    ret,
                    format!("{}#{}", op.process, op.incarnation),
                    show_op(op),
                    show_answer(op),
                    op.id
                ),
            )
        })
        .collect();
    lines.extend(key_events(history, key).into_iter().map(|(at_us, text)| {
        (
            at_us,
            u64::MAX,
            format!("  {:>10}                {text}", ms(at_us)),
        )
    }));
    lines.sort_by_key(|(at_us, order, _)| (*at_us, *order));
    let focus: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, (_, order, _))| involved.iter().any(|id| u64::from(*id) == *order))
        .map(|(index, _)| index)
        .collect();
    let (first, last) = match (focus.first(), focus.last()) {
        (Some(first), Some(last)) => (*first, *last),
        _ => (
            lines.len().saturating_sub(MAX_TIMELINE_LINES),
            lines.len().saturating_sub(1),
        ),
    };
    let context = MAX_TIMELINE_LINES.saturating_sub(last - first + 1) / 2;
    let start = first.saturating_sub(context);
    let end = (last + context + 1).min(lines.len());
    let mut text = String::new();
    if start > 0 {
        let _ = writeln!(text, "    ... {start} earlier lines");
    }
    for (_, _, line) in &lines[start..end] {
        let _ = writeln!(text, "  {line}");
    }
    if end < lines.len() {
        let _ = writeln!(text, "    ... {} later lines", lines.len() - end);
    }
    text
}

fn violation_line(history: Option<&History>, violation: &Violation) -> String {
    let key = violation
        .key
        .and_then(|key| history.map(|h| h.keys[usize::from(key)].clone()))
        .map_or_else(String::new, |name| format!(" on key {name}"));
    format!("{}{key}: {}", violation.invariant, violation.message)
}

/// What the checker exempted or excused, if anything.
#[must_use]
pub fn notes_line(verdict: &Verdict) -> Option<String> {
    let notes = &verdict.notes;
    let excused = a1_excused(verdict);
    (notes.stale_answers + notes.dirty_answers + excused > 0).then(|| {
        format!(
            "notes: {} stale and {} dirty read-only answers exempt from S2/S4/S7{}; {} double \
             deliveries excused by their cause (the holder crashed or could not store its \
             receipt, or its lease ended before it completed)",
            notes.stale_answers,
            notes.dirty_answers,
            if notes.strict_s7_keys.is_empty() {
                String::new()
            } else {
                format!(
                    " (--strict-reads would report S7 on {} key(s))",
                    notes.strict_s7_keys.len()
                )
            },
            excused
        )
    })
}

/// Every violation of `verdict`, one line each, then the timelines of the
/// (at most two) keys of the first one, the operations involved marked.
#[must_use]
pub fn violations_text(verdict: &Verdict, history: Option<&History>) -> String {
    let mut text = String::new();
    for violation in &verdict.violations {
        let _ = writeln!(text, "  {}", violation_line(history, violation));
    }
    if let (Some(first), Some(history)) = (verdict.first(), history) {
        let keys: BTreeSet<KeyId> = verdict
            .violations
            .iter()
            .filter(|v| v.invariant == first.invariant || v.key == first.key)
            .filter_map(|v| v.key)
            .take(2)
            .collect();
        for key in keys {
            let involved: Vec<u32> = verdict
                .violations
                .iter()
                .filter(|v| v.key == Some(key))
                .flat_map(|v| v.ops.iter().copied())
                .collect();
            let _ = writeln!(
                text,
                "  timeline of key {} (stream {}; ms since start, invocation → response; ▶ = involved):",
                history.keys[usize::from(key)],
                history.streams[usize::from(key)]
            );
            text.push_str(&key_timeline(history, key, &involved));
        }
    }
    text
}

/// The full text report of one seed.
#[must_use]
pub fn seed_report(run: &SeedRun, source: &ConfigSource, check: CheckOptions) -> String {
    seed_report_reproduced(run, &reproduce_command(run.seed, source, check))
}

/// [`seed_report`] whose failure ends with `reproduce` as the command that
/// reproduces it (a user's test, `atmostonce_sim::harness`, is rerun by its
/// own command, not `cargo sim`).
#[must_use]
pub fn seed_report_reproduced(run: &SeedRun, reproduce: &str) -> String {
    let mut text = String::new();
    let verdict = if run.verdict.passed() {
        "PASS".to_owned()
    } else {
        format!("FAIL {}", run.verdict.names())
    };
    let _ = writeln!(
        text,
        "seed {} ({:#x}): {verdict}  trace {:#018x}",
        run.seed, run.seed, run.trace_hash
    );
    let _ = writeln!(text, "  config: {}", run.config.summary());
    let _ = writeln!(
        text,
        "  simulated {:.1} s in {:.1} ms ({:.0}x), {} operations, checker {:.2} ms",
        run.sim_us as f64 / 1e6,
        run.wall_sim.as_secs_f64() * 1e3,
        run.sim_us as f64 / 1e6 / run.wall_sim.as_secs_f64().max(1e-9),
        run.ops,
        run.wall_check.as_secs_f64() * 1e3
    );
    if let Some(notes) = notes_line(&run.verdict) {
        let _ = writeln!(text, "  {notes}");
    }
    text.push_str(&violations_text(&run.verdict, run.history.as_ref()));
    if !run.verdict.passed() {
        let _ = writeln!(text, "  reproduce: {reproduce}");
    }
    text
}

/// The violations of `verdict` as JSON objects.
#[must_use]
pub fn violations_json(verdict: &Verdict, history: Option<&History>) -> Vec<Value> {
    verdict
        .violations
        .iter()
        .map(|violation| {
            json!({
                "invariant": violation.invariant.to_string(),
                "key": violation.key.and_then(|key| history.map(|h| h.keys[usize::from(key)].clone())),
                "ops": violation.ops,
                "message": violation.message,
            })
        })
        .collect()
}

/// One failing seed as a JSON object.
#[must_use]
pub fn seed_json(run: &SeedRun, source: &ConfigSource, check: CheckOptions) -> Value {
    let violations = violations_json(&run.verdict, run.history.as_ref());
    json!({
        "seed": run.seed,
        "verdict": if run.verdict.passed() { "pass" } else { "fail" },
        "invariants": run.verdict.invariants().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "violations": violations,
        "trace_hash": format!("{:#018x}", run.trace_hash),
        "faults": run.config.faults.to_string(),
        "config": serde_json::to_value(&run.config).unwrap_or(Value::Null),
        "simulated_ms": run.sim_us / 1000,
        "reproduce": reproduce_command(run.seed, source, check),
    })
}

/// An internal error as a JSON object.
#[must_use]
pub fn error_json(error: &InternalError) -> Value {
    json!({ "seed": error.seed, "verdict": "internal-error", "message": error.message })
}

/// The summary line of a sweep.
#[must_use]
pub fn summary_line(summary: &Summary) -> String {
    SummaryRecord::new(summary).line()
}

/// The summary as a JSON object (without its sweep's identity and lists:
/// see [`SummaryRecord`]).
#[must_use]
pub fn summary_json(summary: &Summary) -> Value {
    SummaryRecord::new(summary).json()
}
