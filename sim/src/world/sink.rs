//! The workload's fenced downstream (`docs/spec.md`, "Fenced API"): the
//! system a holder delivers to, passing its token's fence along.
//!
//! Per key it remembers the highest fence it accepted and the claim that
//! delivered it, and decides each delivery so:
//!
//! - a fence above the highest: accepted, applied;
//! - the highest fence again, by the same claim (a holder retrying its own
//!   delivery, or delivering after a renewal, which keeps the fence):
//!   acknowledged as a duplicate and not applied again;
//! - a lower fence, or the highest by another claim: refused. Fences are
//!   unique per grant, so the second can only follow an engine that granted
//!   one fence twice; the sink refuses it rather than apply a side effect
//!   twice.
//!
//! A1 is judged on the deliveries it applied.

use std::collections::BTreeMap;

use crate::history::{KeyId, OpId};

/// What the downstream did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Accepted and applied.
    Applied,
    /// The same holder's delivery again: acknowledged, not applied again.
    Duplicate,
    /// A stale fence: refused, nothing applied.
    Refused,
}

/// The downstream's memory: per key, the highest fence accepted and whose.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    highest: BTreeMap<KeyId, (u64, OpId)>,
}

impl Sink {
    /// Decides a delivery of `key` with `fence` by the holder of `claim`.
    pub(crate) fn offer(&mut self, key: KeyId, fence: u64, claim: OpId) -> Delivered {
        match self.highest.get(&key) {
            Some((highest, _)) if fence < *highest => Delivered::Refused,
            Some((highest, holder)) if fence == *highest => {
                if *holder == claim {
                    Delivered::Duplicate
                } else {
                    Delivered::Refused
                }
            }
            _ => {
                self.highest.insert(key, (fence, claim));
                Delivered::Applied
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_applies_rising_fences_and_refuses_stale_ones() {
        let mut sink = Sink::default();
        assert_eq!(sink.offer(0, 3, 10), Delivered::Applied);
        assert_eq!(sink.offer(0, 3, 10), Delivered::Duplicate);
        assert_eq!(sink.offer(0, 3, 11), Delivered::Refused);
        assert_eq!(sink.offer(0, 1, 12), Delivered::Refused);
        assert_eq!(sink.offer(0, 7, 13), Delivered::Applied);
        assert_eq!(sink.offer(1, 0, 14), Delivered::Applied);
    }
}
