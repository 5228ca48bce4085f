//! `--timeline FILE.html`: a self-contained picture of a run (inline SVG,
//! no scripts, no external resources): one lane per process, each operation
//! on the keys involved drawn from invocation to response and coloured by
//! outcome, faults marked, the violating operations outlined.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use atmostonce::DedupDecision;
use atmostonce_verify::oracle::{ErrorClass, SpecAnswer};

use crate::check::show_answer;
use crate::history::{Event, FaultEvent, History, KeyId, OpRecord, Process};
use crate::outcome::{ConfigSource, SeedRun};
use crate::report::{seed_report, show_op};

const LANE_HEIGHT: u32 = 34;
const LEFT: u32 = 110;
const TOP: u32 = 40;
const WIDTH: u32 = 1250;
/// A violation longer than this also gets a close-up of its first operation.
const ZOOM_SPAN_US: u64 = 400_000;

/// The fill colour of an operation's bar and the legend's words for it.
fn colour(op: &OpRecord) -> (&'static str, &'static str) {
    match &op.result {
        None => ("#d9d9d9", "no answer (process crashed)"),
        Some(Ok(SpecAnswer::Decision(DedupDecision::Claimed)))
        | Some(Ok(SpecAnswer::Lookup(Some(DedupDecision::Claimed)))) => {
            ("#2ca02c", "claim granted")
        }
        Some(Ok(SpecAnswer::Decision(DedupDecision::InFlight)))
        | Some(Ok(SpecAnswer::Lookup(Some(DedupDecision::InFlight)))) => ("#9e9e9e", "in flight"),
        Some(Ok(SpecAnswer::Decision(DedupDecision::Completed(_))))
        | Some(Ok(SpecAnswer::Lookup(Some(DedupDecision::Completed(_))))) => {
            ("#1f77b4", "completed (receipt answered)")
        }
        Some(Ok(SpecAnswer::Lookup(None))) => ("#c5b0d5", "absent"),
        Some(Ok(SpecAnswer::Done)) => ("#17becf", "ok (complete/release/expire)"),
        Some(Err(error)) => match ErrorClass::of(error) {
            ErrorClass::Indeterminate => ("#ff7f0e", "indeterminate error"),
            ErrorClass::NoEffect => ("#ffdd57", "refused, no effect (conflict)"),
            ErrorClass::Collision => ("#8c564b", "DedupCollision"),
            ErrorClass::Unclassified => ("#d62728", "error the oracle cannot classify"),
        },
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `run` (whose history is `history`).
#[must_use]
pub fn html(run: &SeedRun, history: &History) -> String {
    let involved: BTreeSet<u32> = run
        .verdict
        .violations
        .iter()
        .flat_map(|v| v.ops.iter().copied())
        .collect();
    let mut keys: BTreeSet<KeyId> = run
        .verdict
        .violations
        .iter()
        .filter_map(|v| v.key)
        .collect();
    if keys.is_empty() {
        // A passing run: show its busiest key.
        let mut counts = vec![0usize; history.keys.len()];
        for op in &history.ops {
            counts[usize::from(op.key)] += 1;
        }
        if let Some((busiest, _)) = counts.iter().enumerate().max_by_key(|(_, count)| **count) {
            keys.extend(KeyId::try_from(busiest).ok());
        }
    }
    let ops: Vec<&OpRecord> = history
        .ops
        .iter()
        .filter(|op| keys.contains(&op.key))
        .collect();

    // The window: around the violating operations, else the whole run.
    let end_us = history.end_us().max(1);
    let focus: Vec<&&OpRecord> = ops.iter().filter(|op| involved.contains(&op.id)).collect();
    // The window: around the violating operations, else the whole run.
    let mut panels = Vec::new();
    match (
        focus.iter().map(|op| op.call_us).min(),
        focus.iter().map(|op| op.ret_us.unwrap_or(end_us)).max(),
    ) {
        (Some(first), Some(last)) => {
            let margin = ((last - first) / 4).max(50_000);
            let to_us = (last + margin).min(end_us.max(last));
            panels.push(panel(
                history,
                &ops,
                &keys,
                &involved,
                first.saturating_sub(margin),
                to_us,
            ));
            // A close-up of the first violating operation when the whole
            // violation spans so long that its bars are slivers.
            if last - first > ZOOM_SPAN_US {
                let around = focus
                    .iter()
                    .min_by_key(|op| op.call_us)
                    .map_or(first, |op| op.call_us);
                panels.push(panel(
                    history,
                    &ops,
                    &keys,
                    &involved,
                    around.saturating_sub(ZOOM_SPAN_US / 4),
                    around + ZOOM_SPAN_US * 3 / 4,
                ));
            }
        }
        _ => {
            panels.push(caption("the whole run", 0, end_us));
            panels.push(panel(history, &ops, &keys, &involved, 0, end_us));
        }
    }
    let svg = panels.join("\n");

    let legend: String = [
        ("#2ca02c", "claim granted"),
        ("#9e9e9e", "in flight"),
        ("#1f77b4", "completed (receipt answered)"),
        ("#c5b0d5", "absent"),
        ("#17becf", "ok (complete/release/expire)"),
        ("#ff7f0e", "indeterminate error"),
        ("#ffdd57", "refused, no effect"),
        ("#8c564b", "DedupCollision"),
        ("#d9d9d9", "no answer (crashed)"),
    ]
    .iter()
    .map(|(fill, label)| {
        format!(
            r#"<span class="chip"><span class="swatch" style="background:{fill}"></span>{label}</span>"#
        )
    })
    .collect();
    let key_names: Vec<&str> = keys
        .iter()
        .map(|key| history.keys[usize::from(*key)].as_str())
        .collect();
    let source = ConfigSource::Fixed(run.config.clone());
    let report = seed_report(run, &source, crate::check::CheckOptions::default());
    let verdict = if run.verdict.passed() {
        "PASS".to_owned()
    } else {
        format!("FAIL {}", run.verdict.names())
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>atmostonce-sim seed {seed}: {verdict}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #222; }}
h1 {{ font-size: 18px; margin: 0 0 6px 0; }}
.sub {{ color: #555; font-size: 13px; margin-bottom: 8px; }}
.chip {{ display: inline-block; margin: 0 12px 6px 0; font-size: 12px; }}
.swatch {{ display: inline-block; width: 14px; height: 10px; margin-right: 4px; border: 1px solid #333; vertical-align: middle; }}
pre {{ background: #f6f6f6; padding: 10px; font-size: 11px; overflow-x: auto; }}
.fail {{ color: #d62728; }} .pass {{ color: #2ca02c; }}
</style></head><body>
<h1>seed {seed} — <span class="{class}">{verdict}</span> — key(s) {keys}</h1>
<div class="sub">trace {trace:#018x} · faults {faults} · run of {end:.1} ms · red outline = operations of the violation · dashed bar = no answer · ◆ gold = delivery, white = failed delivery · dashed vertical lines = faults (hover for details)</div>
<div>{legend}</div>
{svg}
<h2 style="font-size:15px">Report</h2>
<pre>{report}</pre>
</body></html>
"#,
        seed = run.seed,
        class = if run.verdict.passed() { "pass" } else { "fail" },
        keys = key_names.join(", "),
        trace = run.trace_hash,
        faults = run.config.faults,
        end = end_us as f64 / 1000.0,
        report = escape(&report),
    )
}

fn caption(what: &str, from_us: u64, to_us: u64) -> String {
    format!(
        r#"<h3 style="font-size:13px;margin:14px 0 2px 0">{what}: {:.1} – {:.1} ms</h3>"#,
        from_us as f64 / 1000.0,
        to_us as f64 / 1000.0
    )
}

/// One picture of `ops` between `from_us` and `to_us`.
fn panel(
    history: &History,
    ops: &[&OpRecord],
    keys: &BTreeSet<KeyId>,
    involved: &BTreeSet<u32>,
    from_us: u64,
    to_us: u64,
) -> String {
    let end_us = history.end_us().max(1);
    let to_us = to_us.max(from_us + 1);
    // One lane per process with an operation in the window.
    let mut lanes: Vec<Process> = ops
        .iter()
        .filter(|op| op.ret_us.unwrap_or(end_us) >= from_us && op.call_us <= to_us)
        .map(|op| op.process)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if lanes.is_empty() {
        lanes.push(Process::Sweeper);
    }
    let lane_of = |process: Process| lanes.iter().position(|lane| *lane == process);
    let span = (to_us - from_us).max(1) as f64;
    let x = |us: u64| -> f64 {
        let clamped = us.clamp(from_us, to_us);
        f64::from(LEFT) + (clamped - from_us) as f64 / span * f64::from(WIDTH - LEFT - 20)
    };
    let lane_y = |lane: usize| TOP + u32::try_from(lane).unwrap_or(0) * LANE_HEIGHT;
    let height = TOP + u32::try_from(lanes.len()).unwrap_or(0) * LANE_HEIGHT + 40;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="monospace" font-size="11">"#
    );
    // Lanes and axis.
    for (index, lane) in lanes.iter().enumerate() {
        let y = lane_y(index);
        let _ = write!(
            svg,
            r##"<rect x="0" y="{y}" width="{WIDTH}" height="{LANE_HEIGHT}" fill="{}"/><text x="6" y="{}" font-weight="bold">{lane}</text>"##,
            if index % 2 == 0 { "#fafafa" } else { "#f0f0f0" },
            y + LANE_HEIGHT / 2 + 4
        );
    }
    let ticks = 10;
    for tick in 0..=ticks {
        let us = from_us + (to_us - from_us) * tick / ticks;
        let tx = x(us);
        let _ = write!(
            svg,
            r##"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{}" stroke="#ccc"/><text x="{tx:.1}" y="{}" text-anchor="middle">{:.1} ms</text>"##,
            TOP - 5,
            height - 30,
            TOP - 10,
            us as f64 / 1000.0
        );
    }
    // Faults.
    for event in &history.events {
        let at = event.at_us();
        if at < from_us || at > to_us {
            continue;
        }
        let ex = x(at);
        match event {
            Event::Fault { fault, .. } => {
                let (lane, label, colour) = match fault {
                    FaultEvent::StoreCrash { .. } => (None, "store crash".to_owned(), "#d62728"),
                    FaultEvent::StoreRestart => (None, "store restart".to_owned(), "#ff9896"),
                    FaultEvent::QuietPhase => (None, "quiet phase".to_owned(), "#7f7f7f"),
                    FaultEvent::ConnectionsTerminated { count } => {
                        (None, format!("{count} connections terminated"), "#d62728")
                    }
                    FaultEvent::ProducerCrash(p) => {
                        (lane_of(*p), format!("{p} crashed"), "#d62728")
                    }
                    FaultEvent::ProducerRestart(p) => {
                        (lane_of(*p), format!("{p} restarted"), "#ff9896")
                    }
                    FaultEvent::ProducerPause(p, ms) => {
                        (lane_of(*p), format!("{p} paused {ms} ms"), "#9467bd")
                    }
                    FaultEvent::ProducerResume(p) => {
                        (lane_of(*p), format!("{p} resumed"), "#c5b0d5")
                    }
                    FaultEvent::Corruption { key, how, .. } if keys.contains(key) => {
                        (None, format!("corruption: {how}"), "#e377c2")
                    }
                    FaultEvent::Compaction {
                        stream, below_seq, ..
                    } if keys
                        .iter()
                        .any(|key| history.streams.get(usize::from(*key)) == Some(stream)) =>
                    {
                        (None, format!("compacted below {below_seq}"), "#8c564b")
                    }
                    FaultEvent::StaleRead { op: Some(op), .. }
                    | FaultEvent::StoreCallError { op: Some(op), .. }
                    | FaultEvent::StoreCallFailed { op: Some(op), .. }
                        if history
                            .ops
                            .get(*op as usize)
                            .is_some_and(|o| keys.contains(&o.key)) =>
                    {
                        let lane = history
                            .ops
                            .get(*op as usize)
                            .and_then(|o| lane_of(o.process));
                        let label = match fault {
                            FaultEvent::StaleRead { hidden, .. } => {
                                format!("stale read (op {op}, {hidden} hidden)")
                            }
                            FaultEvent::StoreCallError { call, applied, .. } => format!(
                                "{call} error (op {op}, {})",
                                if *applied { "applied" } else { "not applied" }
                            ),
                            FaultEvent::StoreCallFailed { call, .. } => {
                                format!("{call} failed (op {op}, outcome unknown)")
                            }
                            _ => String::new(),
                        };
                        (lane, label, "#ff7f0e")
                    }
                    _ => continue,
                };
                let (y1, y2) = match lane {
                    Some(lane) => (lane_y(lane), lane_y(lane) + LANE_HEIGHT),
                    None => (TOP, height - 40),
                };
                let _ = write!(
                    svg,
                    r#"<line x1="{ex:.1}" y1="{y1}" x2="{ex:.1}" y2="{y2}" stroke="{colour}" stroke-width="2" stroke-dasharray="4 2"><title>{} at {:.3} ms</title></line><path d="M{:.1} {} l4 -7 l-8 0 z" fill="{colour}"><title>{} at {:.3} ms</title></path>"#,
                    escape(&label),
                    at as f64 / 1000.0,
                    ex + 0.0,
                    y1 + 7,
                    escape(&label),
                    at as f64 / 1000.0
                );
            }
            Event::Delivery {
                process,
                key,
                claim,
                ok,
                ..
            } if keys.contains(key) => {
                if let Some(lane) = lane_of(*process) {
                    let y = lane_y(lane) + LANE_HEIGHT / 2;
                    let _ = write!(
                        svg,
                        r##"<path d="M{ex:.1} {} l5 6 l-5 6 l-5 -6 z" fill="{}" stroke="#000"><title>{process} {} key {} ({}) at {:.3} ms</title></path>"##,
                        y - 6,
                        if *ok { "#ffd700" } else { "#ffffff" },
                        if *ok { "delivered" } else { "delivery failed" },
                        history.keys[usize::from(*key)],
                        crate::history::claim_label(*claim),
                        at as f64 / 1000.0
                    );
                }
            }
            _ => {}
        }
    }
    // Operations.
    for op in ops {
        let Some(lane) = lane_of(op.process) else {
            continue;
        };
        let ret = op.ret_us.unwrap_or(to_us);
        if ret < from_us || op.call_us > to_us {
            continue;
        }
        let (x1, x2) = (x(op.call_us), x(ret));
        let y = lane_y(lane) + 6;
        let (fill, _) = colour(op);
        let violating = involved.contains(&op.id);
        let stroke = if violating {
            r##"stroke="#d62728" stroke-width="3""##
        } else {
            r##"stroke="#333" stroke-width="0.5""##
        };
        let dash = if op.ret_us.is_none() {
            r#" stroke-dasharray="3 2""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r#"<rect x="{x1:.1}" y="{y}" width="{:.1}" height="{}" fill="{fill}" {stroke}{dash} rx="2"><title>op {} {} {}: {} → {}{}{} ({:.3} → {} ms)</title></rect>"#,
            (x2 - x1).max(2.0),
            LANE_HEIGHT - 12,
            op.id,
            op.process,
            history.keys[usize::from(op.key)],
            escape(&show_op(op)),
            escape(&show_answer(op)),
            if op.stale_read { " [stale read]" } else { "" },
            if op.dirty_read { " [dirty read]" } else { "" },
            op.call_us as f64 / 1000.0,
            op.ret_us.map_or_else(
                || "never".to_owned(),
                |r| format!("{:.3}", r as f64 / 1000.0)
            )
        );
        if x2 - x1 > 40.0 || violating {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" font-size="9" pointer-events="none">{}{}</text>"#,
                x1 + 2.0,
                y + 14,
                op.name(),
                if violating {
                    format!(" #{}", op.id)
                } else {
                    String::new()
                }
            );
        }
    }
    svg.push_str("</svg>");
    svg
}
