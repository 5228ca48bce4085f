//! Live mode's reports: the text a person reads and the `--json` summary.

use std::fmt::Write as _;

use atmostonce::DedupDecision;
use atmostonce_verify::oracle::{SpecAnswer, SpecOp};
use serde_json::{Value, json};

use super::run::LiveRun;
use super::storage::per_minute;
use crate::check::a1_excused;
use crate::history::{History, Process, op_name};
use crate::report::{key_timeline, notes_line, violations_json, violations_text};

/// Latency figures of one kind of operation, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// `claim`, `lookup`, `complete`, `release`, `expire`.
    pub kind: &'static str,
    /// Operations that answered.
    pub count: usize,
    /// Of those, answers that were errors.
    pub errors: usize,
    /// Median, 99th percentile and largest time from invocation to answer.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// The kinds of operation, in report order.
const KINDS: [&str; 5] = ["claim", "lookup", "complete", "release", "expire"];

/// The value at percentile `per_cent` of `sorted` (nearest rank).
fn percentile(sorted: &[u64], per_cent: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * per_cent).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Latency per kind of operation, over the producers' and the sweeper's
/// answered operations (the probe's are left out).
#[must_use]
pub fn latencies(history: &History) -> Vec<Latency> {
    KINDS
        .iter()
        .map(|kind| {
            let answered: Vec<_> = history
                .ops
                .iter()
                .filter(|op| op_name(&op.op) == *kind && op.process != Process::Probe)
                .filter(|op| op.result.is_some())
                .collect();
            let mut spans: Vec<u64> = answered
                .iter()
                .filter_map(|op| Some(op.ret_us?.saturating_sub(op.call_us)))
                .collect();
            spans.sort_unstable();
            let ms = |us: u64| us as f64 / 1000.0;
            Latency {
                kind,
                count: answered.len(),
                errors: answered
                    .iter()
                    .filter(|op| matches!(op.result, Some(Err(_))))
                    .count(),
                p50_ms: ms(percentile(&spans, 50)),
                p99_ms: ms(percentile(&spans, 99)),
                max_ms: ms(spans.last().copied().unwrap_or(0)),
            }
        })
        .collect()
}

/// A soak's view of one minute of the run: the claims invoked in it and
/// their latency, so that a long run shows whether claims slow down as
/// history grows.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteLatency {
    /// Minutes since the run started (0 is the first).
    pub minute: u64,
    /// Claims invoked in that minute that answered.
    pub claims: usize,
    /// Median time from invocation to answer.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// Microseconds in a minute.
const MINUTE_US: u64 = 60_000_000;

/// Claim latency per minute of the run (by invocation time), over the
/// producers' answered claims; minutes without one are left out.
#[must_use]
pub fn claim_latency_per_minute(history: &History) -> Vec<MinuteLatency> {
    let mut minutes: std::collections::BTreeMap<u64, Vec<u64>> = std::collections::BTreeMap::new();
    for op in &history.ops {
        if op_name(&op.op) != "claim" || op.process == Process::Probe || op.result.is_none() {
            continue;
        }
        if let Some(ret_us) = op.ret_us {
            minutes
                .entry(op.call_us / MINUTE_US)
                .or_default()
                .push(ret_us.saturating_sub(op.call_us));
        }
    }
    minutes
        .into_iter()
        .map(|(minute, mut spans)| {
            spans.sort_unstable();
            let ms = |us: u64| us as f64 / 1000.0;
            MinuteLatency {
                minute,
                claims: spans.len(),
                p50_ms: ms(percentile(&spans, 50)),
                p99_ms: ms(percentile(&spans, 99)),
            }
        })
        .collect()
}

/// Operations the producers invoked, and deliveries they made.
fn producer_ops(history: &History) -> usize {
    history
        .ops
        .iter()
        .filter(|op| matches!(op.process, Process::Producer(_)))
        .count()
}

fn deliveries(history: &History) -> usize {
    history
        .events
        .iter()
        .filter(|event| matches!(event, crate::history::Event::Delivery { ok: true, .. }))
        .count()
}

/// The claims' answers by kind, every process's (the probe's too): what
/// the engine counts as `atmostonce_operations_total{operation="claim"}`.
fn decisions(history: &History) -> Value {
    let mut counts = [0_usize; 3];
    for op in &history.ops {
        if let (SpecOp::Claim { .. }, Some(Ok(SpecAnswer::Decision(decision)))) =
            (&op.op, &op.result)
        {
            counts[match decision {
                DedupDecision::Claimed => 0,
                DedupDecision::InFlight => 1,
                DedupDecision::Completed(_) => 2,
            }] += 1;
        }
    }
    json!({ "claimed": counts[0], "in_flight": counts[1], "completed": counts[2] })
}

fn expiries(history: &History) -> usize {
    history
        .ops
        .iter()
        .filter(|op| matches!(op.op, SpecOp::Expire) && matches!(op.result, Some(Ok(_))))
        .count()
}

fn ops_per_second(run: &LiveRun) -> f64 {
    producer_ops(&run.history) as f64 / run.main_phase.as_secs_f64().max(1e-9)
}

fn faults_list(run: &LiveRun) -> String {
    let names: Vec<&str> = run
        .options
        .faults
        .iter()
        .map(|fault| fault.name())
        .collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(",")
    }
}

/// The text report of a live run.
#[must_use]
pub fn text(run: &LiveRun, full_history: bool) -> String {
    let mut text = String::new();
    let options = &run.options;
    let config = &options.config;
    let verdict = if run.verdict.passed() {
        "PASS".to_owned()
    } else {
        format!("FAIL {}", run.verdict.names())
    };
    let _ = writeln!(text, "live run against {}: {verdict}", options.store.name());
    let _ = writeln!(
        text,
        "  {} producers, {} keys, faults {}{}; seed {:#x}",
        config.shape.producers,
        config.shape.keys,
        faults_list(run),
        options
            .plant
            .map_or_else(String::new, |plant| format!(", PLANTED {}", plant.name())),
        options.seed
    );
    let _ = writeln!(
        text,
        "  timings: ttl={}ms sweep={}ms think≤{}ms delivery_fail={}‰ lookup={}‰ echo={}‰ \
         hot={}@{}‰ latency={}‰≤{}ms producer_crash_every={}ms store_crash_every={}ms \
         disconnect_every={}ms skew≤{}ms hash_bits={} read_batch={}",
        config.ttl_ms,
        config.sweep_interval_ms,
        config.think_max_ms,
        config.delivery_failure_pm,
        config.lookup_pm,
        config.echo_pm,
        config.hot_keys,
        config.hot_pm,
        config.latency_pm,
        config.latency_max_ms,
        config.producer_crash_every_ms,
        config.store_crash_every_ms,
        options.disconnect_every_ms,
        config.max_skew_ms,
        config.hash_bits,
        config.read_batch
    );
    let _ = writeln!(
        text,
        "  main phase {:.1} s{}, whole run {:.1} s (quiet phase and probe included)",
        run.main_phase.as_secs_f64(),
        if run.capped {
            " (ended early: the history reached its bound)"
        } else {
            ""
        },
        run.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        text,
        "  throughput: {} operations by producers, {:.0} ops/s; {} deliveries, {} expiries",
        producer_ops(&run.history),
        ops_per_second(run),
        deliveries(&run.history),
        expiries(&run.history)
    );
    let _ = writeln!(
        text,
        "  latency (ms)   count  errors      p50      p99      max"
    );
    for latency in latencies(&run.history) {
        let _ = writeln!(
            text,
            "    {:<10} {:>7} {:>7} {:>8.2} {:>8.2} {:>8.2}",
            latency.kind,
            latency.count,
            latency.errors,
            latency.p50_ms,
            latency.p99_ms,
            latency.max_ms
        );
    }
    let _ = writeln!(
        text,
        "  per minute   minute  claims  p50 (ms)  p99 (ms)    keys  records  records/key  \
         workload keys' records/key"
    );
    let storage = per_minute(&run.storage);
    for minute in claim_latency_per_minute(&run.history) {
        let stored = storage
            .iter()
            .find(|(at, _)| *at == minute.minute)
            .map_or_else(
                || format!("{:>7} {:>8} {:>12} {:>27}", "-", "-", "-", "-"),
                |(_, sample)| {
                    format!(
                        "{:>7} {:>8} {:>12.2} {:>27.2}",
                        sample.streams,
                        sample.records,
                        sample.records_per_key(),
                        sample.records_per_workload_key()
                    )
                },
            );
        let _ = writeln!(
            text,
            "               {:>6} {:>7} {:>9.2} {:>9.2} {stored}",
            minute.minute, minute.claims, minute.p50_ms, minute.p99_ms
        );
    }
    let faults = &run.faults;
    let _ = writeln!(
        text,
        "  faults: {} producer crashes; {} store crashes (after them the store had lost {} \
         unacknowledged and {} acknowledged appends; {} operations had read a lost entry); {} \
         pg_terminate_backend rounds ({} connections); {} failed store calls; {} delayed \
         calls; {} clock jumps; {} janitor compactions ({} records removed)",
        faults.producer_crashes,
        faults.store_crashes,
        faults.unacknowledged_lost,
        faults.acknowledged_lost,
        faults.dirty_readers,
        faults.disconnects,
        faults.connections_terminated,
        faults.store_call_errors,
        faults.delayed_calls,
        faults.clock_jumps,
        faults.compactions,
        faults.compacted_records
    );
    let _ = writeln!(
        text,
        "  checker: {} operations judged in {:.2} s: {}",
        run.history.ops.len(),
        run.checker.as_secs_f64(),
        if run.verdict.passed() {
            "every invariant holds (S1-S4, S6, S7, A1, A2)".to_owned()
        } else {
            format!("VIOLATED {}", run.verdict.names())
        }
    );
    if let Some(notes) = notes_line(&run.verdict) {
        let _ = writeln!(text, "  {notes}");
    }
    text.push_str(&violations_text(&run.verdict, Some(&run.history)));
    if full_history {
        for (index, name) in run.history.keys.iter().enumerate() {
            let Ok(key) = u16::try_from(index) else { break };
            let _ = writeln!(text, "  timeline of key {name}:");
            text.push_str(&key_timeline(&run.history, key, &[]));
        }
    }
    if let Some(kept) = &run.kept {
        let _ = writeln!(text, "  the store's data is kept for a look: {kept}");
    }
    if !run.verdict.passed() {
        let _ = writeln!(
            text,
            "  (live runs are not deterministic: rerun with the same flags to look for it again; \
             --seed {:#x} draws the same timings)",
            options.seed
        );
    }
    text
}

/// The `--json` summary of a live run.
#[must_use]
pub fn json(run: &LiveRun) -> Value {
    let history = &run.history;
    let violations = violations_json(&run.verdict, Some(history));
    let latency: serde_json::Map<String, Value> = latencies(history)
        .into_iter()
        .map(|latency| {
            (
                latency.kind.to_owned(),
                json!({
                    "count": latency.count,
                    "errors": latency.errors,
                    "p50_ms": latency.p50_ms,
                    "p99_ms": latency.p99_ms,
                    "max_ms": latency.max_ms,
                }),
            )
        })
        .collect();
    let faults = &run.faults;
    let notes = &run.verdict.notes;
    json!({
        "mode": "live",
        "store": run.options.store.name(),
        "verdict": if run.verdict.passed() { "pass" } else { "fail" },
        "invariants": run.verdict.invariants().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "violations": violations,
        "seed": run.options.seed,
        "faults": faults_list(run),
        "plant": run.options.plant.map(|plant| plant.name()),
        "producers": run.options.config.shape.producers,
        "keys": run.options.config.shape.keys,
        "config": serde_json::to_value(&run.options.config).unwrap_or(Value::Null),
        "main_phase_s": run.main_phase.as_secs_f64(),
        "elapsed_s": run.elapsed.as_secs_f64(),
        "checker_s": run.checker.as_secs_f64(),
        "operations": producer_ops(history),
        "ops_per_second": ops_per_second(run),
        "deliveries": deliveries(history),
        "decisions": decisions(history),
        "expiries": expiries(history),
        "latency_ms": latency,
        "claim_latency_per_minute": claim_latency_per_minute(history)
            .iter()
            .map(|minute| json!({
                "minute": minute.minute,
                "claims": minute.claims,
                "p50_ms": minute.p50_ms,
                "p99_ms": minute.p99_ms,
            }))
            .collect::<Vec<_>>(),
        "storage_per_minute": per_minute(&run.storage)
            .iter()
            .map(|(minute, sample)| json!({
                "minute": minute,
                "keys": sample.streams,
                "records": sample.records,
                "records_per_key": sample.records_per_key(),
                "workload_keys": sample.workload_streams,
                "workload_records": sample.workload_records,
                "records_per_workload_key": sample.records_per_workload_key(),
            }))
            .collect::<Vec<_>>(),
        "fault_counts": {
            "producer_crashes": faults.producer_crashes,
            "store_crashes": faults.store_crashes,
            "unacknowledged_lost": faults.unacknowledged_lost,
            "acknowledged_lost": faults.acknowledged_lost,
            "dirty_readers": faults.dirty_readers,
            "disconnects": faults.disconnects,
            "connections_terminated": faults.connections_terminated,
            "store_call_errors": faults.store_call_errors,
            "delayed_calls": faults.delayed_calls,
            "clock_jumps": faults.clock_jumps,
            "compactions": faults.compactions,
            "compacted_records": faults.compacted_records,
        },
        "exempt_stale_answers": notes.stale_answers,
        "exempt_dirty_answers": notes.dirty_answers,
        "strict_reads_s7_keys": notes.strict_s7_keys.len(),
        "a1_excused": a1_excused(&run.verdict),
        "capped": run.capped,
        "kept": run.kept,
        "exit": run.exit_code(),
    })
}

impl LiveRun {
    /// 0 pass, 1 a violation, 2 the checker could not decide.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        if self
            .verdict
            .invariants()
            .contains(&crate::check::Invariant::Internal)
        {
            2
        } else {
            i32::from(!self.verdict.passed())
        }
    }
}

#[cfg(test)]
mod tests {
    use atmostonce::DedupDecision;
    use atmostonce_verify::oracle::{SpecAnswer, SpecOp};

    use super::{MINUTE_US, MinuteLatency, claim_latency_per_minute};
    use crate::history::{History, Process};

    /// A producer's claim invoked at `call_us` that answered `span_us` later.
    fn claim(history: &mut History, call_us: u64, span_us: u64) {
        let id = history.invoke(
            Process::Producer(0),
            0,
            0,
            SpecOp::Claim { now_millis: 0 },
            None,
            call_us,
        );
        history.respond(
            id,
            Ok(SpecAnswer::Decision(DedupDecision::Claimed)),
            call_us + span_us,
        );
    }

    #[test]
    fn claim_latency_is_reported_per_minute_of_invocation() {
        let mut history = History::new(vec!["k".into()], vec!["s".into()]);
        // Minute 0: 100 claims of 1..=100 ms; the last answers in minute 1.
        for n in 1..=100 {
            claim(&mut history, MINUTE_US - 50_000 + n, n * 1_000);
        }
        // Minute 2 (minute 1 has none): one slow claim; a lookup and the
        // probe's claim do not count.
        claim(&mut history, 2 * MINUTE_US + 5, 7_000);
        let lookup = history.invoke(
            Process::Producer(1),
            0,
            0,
            SpecOp::Lookup,
            None,
            2 * MINUTE_US,
        );
        history.respond(lookup, Ok(SpecAnswer::Lookup(None)), 3 * MINUTE_US);
        let probe = history.invoke(
            Process::Probe,
            0,
            0,
            SpecOp::Claim { now_millis: 0 },
            None,
            2 * MINUTE_US,
        );
        history.respond(
            probe,
            Ok(SpecAnswer::Decision(DedupDecision::Claimed)),
            3 * MINUTE_US,
        );
        assert_eq!(
            claim_latency_per_minute(&history),
            vec![
                MinuteLatency {
                    minute: 0,
                    claims: 100,
                    p50_ms: 50.0,
                    p99_ms: 99.0,
                },
                MinuteLatency {
                    minute: 2,
                    claims: 1,
                    p50_ms: 7.0,
                    p99_ms: 7.0,
                },
            ]
        );
    }
}
