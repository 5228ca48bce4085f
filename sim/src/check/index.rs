//! What the checker indexes once per history: each key's operations in
//! invocation order, its terminal events (releases and expiries) searchable
//! by time, each claim's completions, the deliveries and the producers'
//! crashes; and the helpers every rule shares.

use std::collections::BTreeMap;

use atmostonce_verify::oracle::{ErrorClass, SpecOp};

use super::verdict::{CheckOptions, Verdict, Violation};
use crate::history::{Event, FaultEvent, History, KeyId, OpId, OpRecord, Process, WriteTruth};
use atmostonce_verify::catalogue::{Excused, Invariant, KnownCause};

pub(super) struct Checker<'a> {
    pub(super) history: &'a History,
    pub(super) options: CheckOptions,
    pub(super) corrupted: Vec<KeyId>,
    /// Each key's operations, in invocation order.
    pub(super) by_key: Vec<Vec<&'a OpRecord>>,
    /// Each key's terminal events: `[releases and expiries, expiries only]`;
    /// for a fenced history the second set also holds the claims that may
    /// have been granted (a grant may take over an expired claim or
    /// receipt, ending it without a release).
    terminals: Vec<[Terminals; 2]>,
    /// Each claim's completions (not releases), in invocation order.
    pub(super) completions: BTreeMap<OpId, Vec<&'a OpRecord>>,
    /// Each key's successful deliveries: the claims that authorised them.
    pub(super) deliveries: Vec<Vec<OpId>>,
    /// Each producer's last crash.
    pub(super) last_crash_us: BTreeMap<Process, u64>,
    /// What the history holds that the checker cannot explain (reported as
    /// `Invariant::Internal`, never passed over).
    pub(super) unexplained: Vec<String>,
}

/// The terminal events of one key (releases and expiries that may have
/// ended a claim or an entry), indexed so that "can one be ordered between
/// these two instants" is a binary search: a live history holds thousands
/// of operations per hot key, which a scan per question cannot afford.
#[derive(Debug, Default)]
struct Terminals {
    /// Response times, ascending (`u64::MAX`: never answered).
    rets: Vec<u64>,
    /// For each position, the earliest invocation among the terminals from
    /// that position on.
    suffix_min_call: Vec<u64>,
}

impl Terminals {
    pub(super) fn new(mut spans: Vec<(u64, u64)>) -> Terminals {
        spans.sort_unstable_by_key(|(_, ret_us)| *ret_us);
        let mut suffix_min_call = vec![u64::MAX; spans.len()];
        let mut min = u64::MAX;
        for (index, (call_us, _)) in spans.iter().enumerate().rev() {
            min = min.min(*call_us);
            suffix_min_call[index] = min;
        }
        Terminals {
            rets: spans.into_iter().map(|(_, ret_us)| ret_us).collect(),
            suffix_min_call,
        }
    }

    /// True when some terminal answered after `after_us` and was invoked
    /// before `before_us`.
    fn between(&self, after_us: u64, before_us: u64) -> bool {
        let first = self.rets.partition_point(|ret_us| *ret_us <= after_us);
        self.suffix_min_call
            .get(first)
            .is_some_and(|call_us| *call_us < before_us)
    }
}

/// What an expiry did.
#[derive(PartialEq, Eq)]
pub(super) enum Effect {
    Applied,
    Maybe,
    None,
}

impl<'a> Checker<'a> {
    pub(super) fn new(history: &'a History, options: CheckOptions) -> Checker<'a> {
        let mut checker = Checker {
            history,
            options,
            corrupted: history.corrupted_keys(),
            by_key: vec![Vec::new(); history.keys.len()],
            terminals: Vec::new(),
            completions: BTreeMap::new(),
            deliveries: vec![Vec::new(); history.keys.len()],
            last_crash_us: BTreeMap::new(),
            unexplained: Vec::new(),
        };
        for op in &history.ops {
            if let Some(ops) = checker.by_key.get_mut(usize::from(op.key)) {
                ops.push(op);
            } else {
                checker.unexplained.push(format!(
                    "op {} names key {}, but the history has {} keys",
                    op.id,
                    op.key,
                    history.keys.len()
                ));
            }
            if let Some(Err(error)) = &op.result
                && ErrorClass::of(error) == ErrorClass::Unclassified
            {
                checker.unexplained.push(format!(
                    "op {} answered {error:?}, an error the oracle cannot classify",
                    op.id
                ));
            }
            if let (Some(claim), SpecOp::Complete { .. }) = (op.claim, &op.op) {
                checker.completions.entry(claim).or_default().push(op);
            }
        }
        for event in &history.events {
            match event {
                Event::Delivery {
                    key,
                    claim,
                    ok: true,
                    ..
                } => {
                    if let Some(claims) = checker.deliveries.get_mut(usize::from(*key)) {
                        claims.push(*claim);
                    } else {
                        checker.unexplained.push(format!(
                            "a delivery names key {key}, but the history has {} keys",
                            history.keys.len()
                        ));
                    }
                }
                Event::Fault {
                    at_us,
                    fault: FaultEvent::ProducerCrash(process),
                } => {
                    let last = checker.last_crash_us.entry(*process).or_insert(*at_us);
                    *last = (*last).max(*at_us);
                }
                _ => {}
            }
        }
        checker.terminals = checker
            .by_key
            .iter()
            .map(|ops| {
                [false, true].map(|expiries_only| {
                    Terminals::new(
                        ops.iter()
                            .filter(|op| checker.maybe_terminal(op, expiries_only))
                            .map(|op| (op.call_us, op.ret_or_max()))
                            .collect(),
                    )
                })
            })
            .collect();
        checker
    }

    /// True when `op`'s answer is exempt from S2, S4 and S7 (see the module
    /// docs): it read stale or dirty data and wrote nothing that stayed.
    pub(super) fn exempt(&self, op: &OpRecord) -> bool {
        !self.options.strict_reads && self.unreliable_read(op)
    }

    /// True when `op` read stale data (for the seed API also: data a crash
    /// then dropped) and wrote nothing that stayed. The fenced engine
    /// flushes before it decides on a read that may not be durable, so a
    /// dirty read excuses none of its answers.
    ///
    /// A fenced token call (complete, release, renew) is never excused: a
    /// stale snapshot is a prefix of the stream, so it can neither show the
    /// token's own later record nor justify refusing the token.
    pub(super) fn unreliable_read(&self, op: &OpRecord) -> bool {
        let fenced = self.history.fenced.is_some();
        let token_call = fenced && !matches!(op.op, SpecOp::Claim { .. } | SpecOp::Lookup)
            || op.name() == "renew";
        let dirty = op.dirty_read && !fenced;
        (op.stale_read || dirty) && !token_call && !op.granted() && op.write != WriteTruth::Applied
    }

    pub(super) fn shared(&self, key: KeyId) -> bool {
        self.history.shared_stream[usize::from(key)] || self.corrupted.contains(&key)
    }

    pub(super) fn expiry_effect(op: &OpRecord) -> Effect {
        match (&op.result, op.write) {
            (_, WriteTruth::Dropped) => Effect::None,
            (Some(Ok(_)), _) => Effect::Applied,
            (Some(Err(error)), _) if ErrorClass::of(error) != ErrorClass::Indeterminate => {
                Effect::None
            }
            _ => Effect::Maybe,
        }
    }

    /// True when `op` may have ended a claim or a completed entry: a release
    /// that answered Ok or not at all or with an indeterminate error, or an
    /// expiry that took effect or may have.
    fn maybe_terminal(&self, op: &OpRecord, expiries_only: bool) -> bool {
        match op.op {
            SpecOp::Expire => Self::expiry_effect(op) != Effect::None,
            SpecOp::Release if !expiries_only && !self.exempt(op) => match &op.result {
                None | Some(Ok(_)) => true,
                Some(Err(error)) => ErrorClass::of(error) == ErrorClass::Indeterminate,
            },
            SpecOp::Claim { .. } if expiries_only && self.history.fenced.is_some() => {
                match &op.result {
                    None => true,
                    Some(Ok(_)) => op.granted(),
                    Some(Err(error)) => ErrorClass::of(error) == ErrorClass::Indeterminate,
                }
            }
            _ => false,
        }
    }

    /// True when some terminal event of `key` can be ordered after `first`
    /// was invoked and before `second` answered.
    pub(super) fn terminal_between(
        &self,
        key: KeyId,
        first_call_us: u64,
        second_ret_us: u64,
        expiries_only: bool,
    ) -> bool {
        self.terminals[usize::from(key)][usize::from(expiries_only)]
            .between(first_call_us, second_ret_us)
    }

    /// True when `verdict` already holds a violation of `invariant` on
    /// `key` (only the first is kept).
    pub(super) fn has(verdict: &Verdict, invariant: Invariant, key: KeyId) -> bool {
        verdict
            .violations
            .iter()
            .any(|v| v.invariant == invariant && v.key == Some(key))
    }

    pub(super) fn push(
        verdict: &mut Verdict,
        invariant: Invariant,
        key: KeyId,
        mut ops: Vec<OpId>,
        message: String,
    ) {
        if Self::has(verdict, invariant, key) {
            return;
        }
        ops.sort_unstable();
        ops.dedup();
        verdict.violations.push(Violation {
            invariant,
            key: Some(key),
            ops,
            message,
        });
    }

    /// Records a violation that `cause` explains: reported and counted,
    /// but not a failure. Each excusal names its cause, so a violation the
    /// cause does not explain still fails the run.
    pub(super) fn excuse(
        verdict: &mut Verdict,
        cause: KnownCause,
        invariant: Invariant,
        key: KeyId,
        mut ops: Vec<OpId>,
        message: String,
    ) {
        ops.sort_unstable();
        ops.dedup();
        verdict.excused.push(Excused {
            cause,
            violation: Violation {
                invariant,
                key: Some(key),
                ops,
                message,
            },
        });
    }

    pub(super) fn describe(&self, op: &OpRecord) -> String {
        format!("op {} ({} by {})", op.id, op.name(), op.process)
    }
}
