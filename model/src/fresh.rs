//! [`Fresh`]: every operation a step can start, built once.

use atmostonce::ProcessingReceipt;
use atmostonce::codec::ClaimId;
use atmostonce::core::fenced::{FencedClaimOp, FencedProtocol, FencedSweepOp};
use atmostonce::core::{ClaimOp, CompleteOp, Protocol, ReleaseOp, SweepOp};

use crate::action::Skew;
use crate::config::{TICK_MS, TTL_MS};
use crate::hashed::Hashed;

/// The highest receipt number: deliveries of a key are numbered 1, 2, ...
/// and saturate here. Receipt numbers index a `u32` bitmask per key, and the
/// fault bounds keep deliveries far below it.
pub const MAX_RECEIPT_NUMBER: u8 = 31;

/// Receipts name the key and the delivery: `k0#1` is key 0's first
/// delivery. Receipts never name a producer, so producers stay symmetric.
#[must_use]
pub fn receipt_bytes(key: &str, number: u8) -> ProcessingReceipt {
    ProcessingReceipt::new(format!("{key}#{number}").into_bytes())
}

/// Every operation a step of the model can start, and every receipt, built
/// by the engine's own constructors when the model is made.
///
/// An operation's first state depends only on its inputs (key, receipt,
/// clock), which the model's bounds make few: a claim per key and tick, a
/// completion per key, receipt and tick, and so on. A step that starts one
/// clones it from here (a reference count) instead of building it again,
/// which formatted the stream name and the receipt, copied the key and
/// hashed the whole operation. A constructor that refuses its inputs
/// leaves `None`, and the step is not enabled, as before.
#[derive(Debug)]
pub(crate) struct Fresh {
    ticks: usize,
    claims: Vec<Option<Hashed<ClaimOp>>>,
    releases: Vec<Option<Hashed<ReleaseOp>>>,
    completes: Vec<Option<Hashed<CompleteOp>>>,
    sweeps: Vec<Hashed<SweepOp>>,
    receipts: Vec<ProcessingReceipt>,
}

const RECEIPTS_PER_KEY: usize = MAX_RECEIPT_NUMBER as usize + 1;

/// The highest claim id number a fenced claim of the model draws. A key's
/// stream holds one claim per grant, and the fault bounds and the clock keep
/// grants per key far below it; a claim that would need more is not
/// enabled (see `DedupModel::fresh_claim_id`).
pub const MAX_CLAIM_ID: u8 = 15;

/// The engine's claim id of the model's claim id number `number` (1 ..=
/// [`MAX_CLAIM_ID`]): the number in the last byte, zeros before it. The
/// engine draws ids at random; the model draws them deterministically,
/// fresh for the key (never one the key's stream or a producer holds).
#[must_use]
pub fn claim_id(number: u8) -> Option<ClaimId> {
    let mut bytes = [0; 16];
    bytes[15] = number;
    ClaimId::new(bytes)
}

/// The model's number of a claim id given as bytes, when it is one the
/// model draws.
#[must_use]
pub fn claim_number(bytes: &[u8; 16]) -> Option<u8> {
    let (zeros, last) = bytes.split_at(15);
    (zeros.iter().all(|b| *b == 0) && (1..=MAX_CLAIM_ID).contains(&last[0])).then_some(last[0])
}

/// The fenced operations a step can start whose inputs are few: a claim
/// per key, tick and claim id, and a sweep per tick. (Completions and
/// releases take the token a claim answered and are built when needed.)
#[derive(Debug)]
pub(crate) struct FreshFenced {
    ticks: usize,
    claims: Vec<Option<Hashed<FencedClaimOp>>>,
    sweeps: Vec<Hashed<FencedSweepOp>>,
    /// Per tick, a sweep whose clock reads `skew_ms` ahead and one that
    /// reads it behind (`clock-skew`).
    skewed: Vec<[Hashed<FencedSweepOp>; 2]>,
}

impl FreshFenced {
    /// The operations of `keys` on ticks `0..=max_tick`, and the sweeps of
    /// a clock `skew_ms` off.
    pub(crate) fn new(
        protocol: &FencedProtocol,
        keys: &[String],
        max_tick: u8,
        skew_ms: u64,
    ) -> FreshFenced {
        let ticks = usize::from(max_tick) + 1;
        let now_ms = |tick: usize| tick as u64 * TICK_MS;
        let mut claims = Vec::new();
        for key in keys {
            for tick in 0..ticks {
                for number in 1..=MAX_CLAIM_ID {
                    claims.push(claim_id(number).and_then(|id| {
                        protocol
                            .claim(key, id, None, now_ms(tick))
                            .ok()
                            .map(Hashed::new)
                    }));
                }
            }
        }
        FreshFenced {
            ticks,
            claims,
            sweeps: (0..ticks)
                .map(|tick| Hashed::new(protocol.sweep(now_ms(tick))))
                .collect(),
            skewed: (0..ticks)
                .map(|tick| {
                    let now = now_ms(tick);
                    [
                        Hashed::new(protocol.sweep(now.saturating_add(skew_ms))),
                        Hashed::new(protocol.sweep(now.saturating_sub(skew_ms))),
                    ]
                })
                .collect(),
        }
    }

    /// One fenced sweep at `tick` on a clock off by the skew, ahead or
    /// behind (`None` past the last tick).
    pub(crate) fn skewed_sweep(&self, tick: u8, skew: Skew) -> Option<Hashed<FencedSweepOp>> {
        let [ahead, behind] = self.skewed.get(usize::from(tick))?;
        Some(match skew {
            Skew::Ahead => *ahead,
            Skew::Behind => *behind,
        })
    }

    /// `claim(key, claim id number, tick)`.
    pub(crate) fn claim(&self, key: u8, number: u8, tick: u8) -> Option<Hashed<FencedClaimOp>> {
        let tick = usize::from(tick);
        if tick >= self.ticks || !(1..=MAX_CLAIM_ID).contains(&number) {
            return None;
        }
        let index = (usize::from(key) * self.ticks + tick) * usize::from(MAX_CLAIM_ID)
            + usize::from(number - 1);
        *self.claims.get(index)?
    }

    /// One fenced sweep at `tick` (`None` past the last tick).
    pub(crate) fn sweep(&self, tick: u8) -> Option<Hashed<FencedSweepOp>> {
        self.sweeps.get(usize::from(tick)).copied()
    }
}

impl Fresh {
    /// The operations of `keys` on ticks `0..=max_tick`.
    pub(crate) fn new(protocol: &Protocol, keys: &[String], max_tick: u8) -> Fresh {
        let ticks = usize::from(max_tick) + 1;
        let now_ms = |tick: usize| tick as u64 * TICK_MS;
        let mut fresh = Fresh {
            ticks,
            claims: Vec::new(),
            releases: Vec::new(),
            completes: Vec::new(),
            sweeps: (0..ticks)
                .map(|tick| Hashed::new(protocol.sweep(now_ms(tick), TTL_MS)))
                .collect(),
            receipts: Vec::new(),
        };
        for key in keys {
            for tick in 0..ticks {
                let now = now_ms(tick);
                fresh
                    .claims
                    .push(protocol.claim(key, now).ok().map(Hashed::new));
                fresh
                    .releases
                    .push(protocol.release(key, now).ok().map(Hashed::new));
            }
            for number in 0..=MAX_RECEIPT_NUMBER {
                let receipt = receipt_bytes(key, number);
                for tick in 0..ticks {
                    fresh.completes.push(
                        protocol
                            .complete(key, &receipt, now_ms(tick))
                            .ok()
                            .map(Hashed::new),
                    );
                }
                fresh.receipts.push(receipt);
            }
        }
        fresh
    }

    /// The index of (key, tick) in a table of one entry per key and tick.
    fn key_tick(&self, key: u8, tick: u8) -> Option<usize> {
        let tick = usize::from(tick);
        (tick < self.ticks).then_some(usize::from(key) * self.ticks + tick)
    }

    /// The index of receipt `number` of `key` in [`Fresh::receipts`].
    fn receipt_index(key: u8, number: u8) -> Option<usize> {
        (number <= MAX_RECEIPT_NUMBER)
            .then_some(usize::from(key) * RECEIPTS_PER_KEY + usize::from(number))
    }

    /// `claim_or_get(key, tick)`.
    pub(crate) fn claim(&self, key: u8, tick: u8) -> Option<Hashed<ClaimOp>> {
        *self.claims.get(self.key_tick(key, tick)?)?
    }

    /// `release_claim_at(key, tick)`.
    pub(crate) fn release(&self, key: u8, tick: u8) -> Option<Hashed<ReleaseOp>> {
        *self.releases.get(self.key_tick(key, tick)?)?
    }

    /// `complete_receipt_at(key, receipt(key, number), tick)`.
    pub(crate) fn complete(&self, key: u8, number: u8, tick: u8) -> Option<Hashed<CompleteOp>> {
        let receipt = Self::receipt_index(key, number)?;
        let tick = usize::from(tick);
        if tick >= self.ticks {
            return None;
        }
        *self.completes.get(receipt * self.ticks + tick)?
    }

    /// One sweep at `tick` (`None` past the last tick).
    pub(crate) fn sweep(&self, tick: u8) -> Option<Hashed<SweepOp>> {
        self.sweeps.get(usize::from(tick)).copied()
    }

    /// Key `key`'s receipt number `number`.
    pub(crate) fn receipt(&self, key: u8, number: u8) -> Option<&ProcessingReceipt> {
        self.receipts.get(Self::receipt_index(key, number)?)
    }
}

#[cfg(test)]
mod tests {
    use atmostonce::DedupOptions;
    use atmostonce::core::AppendDurability;

    use super::*;

    #[test]
    fn fresh_operations_are_the_ones_the_protocol_builds() {
        let protocol = Protocol::new(
            "model",
            DedupOptions::default(),
            AppendDurability::NeedsFlush,
        )
        .unwrap();
        let keys = ["k0".to_owned(), "k1".to_owned()];
        let fresh = Fresh::new(&protocol, &keys, 2);
        for (key, name) in (0u8..).zip(&keys) {
            for tick in 0..=2u8 {
                let now = u64::from(tick) * TICK_MS;
                assert_eq!(
                    fresh.claim(key, tick),
                    Some(Hashed::new(protocol.claim(name, now).unwrap()))
                );
                assert_eq!(
                    fresh.release(key, tick),
                    Some(Hashed::new(protocol.release(name, now).unwrap()))
                );
                for number in [0, 1, MAX_RECEIPT_NUMBER] {
                    let receipt = receipt_bytes(name, number);
                    assert_eq!(fresh.receipt(key, number), Some(&receipt));
                    assert_eq!(
                        fresh.complete(key, number, tick),
                        Some(Hashed::new(protocol.complete(name, &receipt, now).unwrap()))
                    );
                }
                assert_eq!(
                    fresh.sweep(tick),
                    Some(Hashed::new(protocol.sweep(now, TTL_MS)))
                );
            }
        }
    }

    #[test]
    fn fresh_fenced_claims_are_the_ones_the_protocol_builds() {
        let options = atmostonce::fenced::FencedOptions::default();
        let protocol = FencedProtocol::new("model", options, AppendDurability::NeedsFlush).unwrap();
        let keys = ["k0".to_owned(), "k1".to_owned()];
        let fresh = FreshFenced::new(&protocol, &keys, 2, 900);
        for (key, name) in (0u8..).zip(&keys) {
            for tick in 0..=2u8 {
                let now = u64::from(tick) * TICK_MS;
                for number in [1, 2, MAX_CLAIM_ID] {
                    let id = claim_id(number).unwrap();
                    assert_eq!(claim_number(id.as_bytes()), Some(number));
                    assert_eq!(
                        fresh.claim(key, number, tick),
                        Some(Hashed::new(protocol.claim(name, id, None, now).unwrap()))
                    );
                }
                assert_eq!(fresh.claim(key, 0, tick), None, "id 0 is reserved");
                assert_eq!(fresh.claim(key, MAX_CLAIM_ID + 1, tick), None);
            }
        }
        assert_eq!(fresh.claim(0, 1, 3), None, "past the last tick");
        assert_eq!(fresh.claim(2, 1, 0), None, "past the last key");
        assert_eq!(fresh.sweep(3), None);
        assert_eq!(
            fresh.skewed_sweep(1, Skew::Ahead).map(|op| op.now_millis()),
            Some(TICK_MS + 900)
        );
        assert_eq!(
            fresh
                .skewed_sweep(1, Skew::Behind)
                .map(|op| op.now_millis()),
            Some(TICK_MS - 900)
        );
        assert_eq!(fresh.skewed_sweep(3, Skew::Ahead), None);
        assert_eq!(claim_number(&[1; 16]), None, "not an id the model draws");
    }

    #[test]
    fn operations_past_the_bounds_are_not_made() {
        let protocol = Protocol::new(
            "model",
            DedupOptions::default(),
            AppendDurability::NeedsFlush,
        )
        .unwrap();
        let fresh = Fresh::new(&protocol, &["k0".to_owned(), "k1".to_owned()], 2);
        assert_eq!(fresh.claim(0, 3), None, "past the last tick");
        assert_eq!(fresh.release(0, 3), None);
        assert_eq!(fresh.claim(2, 0), None, "past the last key");
        assert_eq!(fresh.complete(0, 0, 3), None);
        assert_eq!(fresh.complete(0, MAX_RECEIPT_NUMBER + 1, 0), None);
        assert_eq!(fresh.receipt(0, MAX_RECEIPT_NUMBER + 1), None);
        assert_eq!(fresh.sweep(3), None);
    }
}
