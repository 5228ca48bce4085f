//! The sequential specification of one key under the fenced API
//! (`docs/spec.md`, "Fenced API").
//!
//! Written from the specification's text with plain values only: a token
//! here is [`Token`] (claim id, fence, lease end), never the engine's own
//! token type. The state is the key's current record ([`Current`]) and the
//! sequence the next record lands at, because a grant's fence is that
//! sequence.
//!
//! [`FencedState::judge`] says whether an observed answer is one the
//! operation may give from a state, and which states may follow; the
//! per-key linearizability search ([`super::linear::linearize_checked`])
//! runs over it through [`FencedHistoryOp`].

use std::collections::BTreeSet;

use atmostonce::ProcessingReceipt;

use super::expiry::is_expired;
use super::record::{ClaimId, Record, ReleaseReason};
use super::spec::Judgement;

/// The specification's default lease, in milliseconds.
pub const DEFAULT_LEASE_MS: u64 = 30_000;
/// The specification's default receipt TTL, in milliseconds (one day).
pub const DEFAULT_RECEIPT_TTL_MS: u64 = 86_400_000;

/// The settings a fenced cache runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FencedParams {
    /// How long a holder may work before the key may be taken over.
    pub lease_ms: u64,
    /// How long duplicates are answered with the receipt.
    pub receipt_ttl_ms: u64,
}

impl Default for FencedParams {
    fn default() -> Self {
        FencedParams {
            lease_ms: DEFAULT_LEASE_MS,
            receipt_ttl_ms: DEFAULT_RECEIPT_TTL_MS,
        }
    }
}

/// What the oracle knows of a claim token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    /// The grant's claim id.
    pub claim_id: ClaimId,
    /// The sequence of the claim record that granted it.
    pub fence: u64,
    /// When the (possibly renewed) lease ends.
    pub lease_expires_millis: u64,
}

/// A key's current record, as the specification sees it. `holder` is
/// `None` for a version-1 record (no claim id) and for a grant whose claim
/// id nobody was told (an indeterminate claim that may have landed): no
/// token matches it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Current {
    /// No record.
    #[default]
    Absent,
    /// A claim (granted or renewed).
    Claim {
        /// Whose.
        holder: Option<ClaimId>,
        /// The grant's fence.
        fence: u64,
        /// When the lease ends.
        lease_expires_millis: u64,
        /// The claim's fingerprint.
        fingerprint: Option<Vec<u8>>,
    },
    /// A completion.
    Completion {
        /// Whose claim it completed.
        holder: Option<ClaimId>,
        /// That claim's fence.
        fence: u64,
        /// The receipt.
        receipt: ProcessingReceipt,
        /// The receipt's TTL anchor.
        completed_at_millis: u64,
        /// The claim's fingerprint.
        fingerprint: Option<Vec<u8>>,
    },
    /// A release (by the holder or by the sweeper).
    Release {
        /// The claim id of the record it ended.
        holder: Option<ClaimId>,
        /// Why.
        reason: ReleaseReason,
    },
}

/// A key's state: its current record and the sequence of the next one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FencedState {
    /// The stream's last record.
    pub current: Current,
    /// How many records the stream holds.
    pub next_sequence: u64,
    /// Every completion the key has had, by claim id and receipt: a
    /// completion retried with the same token and receipt may be answered
    /// `Ok` even after its receipt expired and the key moved on (it writes
    /// nothing either way; `docs/spec.md`, "Fenced API").
    pub completed: BTreeSet<(ClaimId, ProcessingReceipt)>,
}

/// An operation on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FencedOp {
    /// `claim` / `claim_with_fingerprint`.
    Claim {
        /// The caller's clock.
        now_millis: u64,
        /// The caller's fingerprint.
        fingerprint: Option<Vec<u8>>,
    },
    /// `complete(token, receipt, now)`.
    Complete {
        /// The caller's token.
        token: Token,
        /// The receipt.
        receipt: ProcessingReceipt,
        /// The caller's clock.
        now_millis: u64,
    },
    /// `release(token, now)`.
    Release {
        /// The caller's token.
        token: Token,
        /// The caller's clock.
        now_millis: u64,
    },
    /// `renew(token, now)`.
    Renew {
        /// The caller's token.
        token: Token,
        /// The caller's clock.
        now_millis: u64,
    },
    /// `lookup(key)`, judged at the caller's clock.
    Lookup {
        /// The caller's clock.
        now_millis: u64,
    },
    /// The sweeper ending an expired claim or receipt.
    Expire {
        /// The sweep's clock.
        now_millis: u64,
    },
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FencedAnswer {
    /// `claim`: granted, with the new token.
    Granted(Token),
    /// `claim` or `lookup`: someone holds the key.
    InFlight {
        /// When the holder's lease ends.
        lease_expires_millis: u64,
    },
    /// `claim` or `lookup`: completed with this receipt.
    Completed(ProcessingReceipt),
    /// `lookup`: absent or expired.
    Absent,
    /// `complete`, `release`, `expire`: done.
    Done,
    /// `renew`: the renewed token.
    Renewed(Token),
}

/// An error answer, as the oracle classifies it. The driver that observed
/// the engine's error maps it here; an error it cannot map is
/// [`FencedError::Unclassified`], which the judge reports instead of
/// guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FencedError {
    /// May or may not have taken effect (a store error, a record that does
    /// not decode).
    Indeterminate,
    /// Took no effect (a lost race reported after its retries, a refused
    /// input).
    NoEffect,
    /// `StaleClaim`: the token's claim is not the key's current record.
    StaleClaim,
    /// `FingerprintMismatch`.
    FingerprintMismatch,
    /// `DedupCollision`.
    Collision,
    /// An error the driver could not classify.
    Unclassified,
}

/// What the specification answers.
pub type FencedResponse = Result<FencedAnswer, FencedError>;

fn fingerprints_differ(held: Option<&[u8]>, caller: Option<&[u8]>) -> bool {
    matches!((held, caller), (Some(held), Some(caller)) if held != caller)
}

impl FencedState {
    /// The state after a stream whose last record is `record`, at
    /// `sequence` (a stream of `sequence + 1` records). Version-1 records
    /// map as `docs/spec.md` ("Fenced API") says: an entry without receipt
    /// is held by no token until `timestamp + lease_ms`.
    #[must_use]
    pub fn after(record: &Record, sequence: u64, params: &FencedParams) -> FencedState {
        let current = match record {
            Record::V1Entry {
                receipt: None,
                timestamp_millis,
                ..
            } => Current::Claim {
                holder: None,
                fence: sequence,
                lease_expires_millis: timestamp_millis.saturating_add(params.lease_ms),
                fingerprint: None,
            },
            Record::V1Entry {
                receipt: Some(receipt),
                timestamp_millis,
                ..
            } => Current::Completion {
                holder: None,
                fence: sequence,
                receipt: ProcessingReceipt::new(receipt.clone()),
                completed_at_millis: *timestamp_millis,
                fingerprint: None,
            },
            Record::V1Tombstone { .. } => Current::Release {
                holder: None,
                reason: ReleaseReason::Expired,
            },
            Record::Claim {
                claim_id,
                fence,
                lease_expires_millis,
                fingerprint,
                ..
            } => Current::Claim {
                holder: Some(*claim_id),
                fence: *fence,
                lease_expires_millis: *lease_expires_millis,
                fingerprint: fingerprint.clone(),
            },
            Record::Completion {
                claim_id,
                fence,
                completed_at_millis,
                receipt,
                fingerprint,
                ..
            } => Current::Completion {
                holder: Some(*claim_id),
                fence: *fence,
                receipt: ProcessingReceipt::new(receipt.clone()),
                completed_at_millis: *completed_at_millis,
                fingerprint: fingerprint.clone(),
            },
            Record::Release {
                claim_id, reason, ..
            } => Current::Release {
                holder: Some(*claim_id),
                reason: *reason,
            },
        };
        FencedState {
            current,
            next_sequence: sequence.saturating_add(1),
            completed: BTreeSet::new(),
        }
    }

    /// True when the current record is a claim or a receipt whose lease or
    /// TTL (plus the grace) has passed at `now_millis`: the sweeper may end
    /// it, and a claim treats the key as absent.
    #[must_use]
    pub fn is_expired(&self, now_millis: u64, params: &FencedParams) -> bool {
        match &self.current {
            Current::Claim {
                lease_expires_millis,
                ..
            } => is_expired(*lease_expires_millis, 0, now_millis),
            Current::Completion {
                completed_at_millis,
                ..
            } => is_expired(*completed_at_millis, params.receipt_ttl_ms, now_millis),
            Current::Absent | Current::Release { .. } => false,
        }
    }

    /// True when a claim at `now_millis` would be granted.
    fn claimable(&self, now_millis: u64, params: &FencedParams) -> bool {
        matches!(self.current, Current::Absent | Current::Release { .. })
            || self.is_expired(now_millis, params)
    }

    fn holds(&self, token: &Token) -> bool {
        matches!(&self.current, Current::Claim { holder: Some(id), .. } if *id == token.claim_id)
    }

    fn appended(&self, current: Current) -> FencedState {
        let mut completed = self.completed.clone();
        if let Current::Completion {
            holder: Some(id),
            receipt,
            ..
        } = &current
        {
            completed.insert((*id, receipt.clone()));
        }
        FencedState {
            current,
            next_sequence: self.next_sequence.saturating_add(1),
            completed,
        }
    }

    /// Whether `op` is a completion the key has already had, by the same
    /// claim with the same receipt.
    fn completed_before(&self, op: &FencedOp) -> bool {
        matches!(op, FencedOp::Complete { token, receipt, .. }
            if self.completed.contains(&(token.claim_id, receipt.clone())))
    }

    /// Whether `op` is a completion by a claim the key once completed with
    /// another receipt.
    fn completed_otherwise_before(&self, op: &FencedOp) -> bool {
        matches!(op, FencedOp::Complete { token, receipt, .. }
            if self.completed.iter().any(|(id, stored)| *id == token.claim_id && stored != receipt))
    }

    /// Applies `op`: the state that follows and the answer. `granted_id` is
    /// the claim id a grant carries (the engine draws it at random; `None`
    /// when nobody was told it).
    pub fn apply(
        &self,
        op: &FencedOp,
        params: &FencedParams,
        granted_id: Option<ClaimId>,
    ) -> (FencedState, FencedResponse) {
        let unchanged = |response| (self.clone(), response);
        match op {
            FencedOp::Claim {
                now_millis,
                fingerprint,
            } => {
                if self.claimable(*now_millis, params) {
                    let lease_expires_millis = now_millis.saturating_add(params.lease_ms);
                    let fence = self.next_sequence;
                    let next = self.appended(Current::Claim {
                        holder: granted_id,
                        fence,
                        lease_expires_millis,
                        fingerprint: fingerprint.clone(),
                    });
                    let token = Token {
                        claim_id: granted_id.unwrap_or(ClaimId::ZERO),
                        fence,
                        lease_expires_millis,
                    };
                    return (next, Ok(FencedAnswer::Granted(token)));
                }
                match &self.current {
                    Current::Claim {
                        fingerprint: held,
                        lease_expires_millis,
                        ..
                    } => unchanged(
                        if fingerprints_differ(held.as_deref(), fingerprint.as_deref()) {
                            Err(FencedError::FingerprintMismatch)
                        } else {
                            Ok(FencedAnswer::InFlight {
                                lease_expires_millis: *lease_expires_millis,
                            })
                        },
                    ),
                    Current::Completion {
                        fingerprint: held,
                        receipt,
                        ..
                    } => unchanged(
                        if fingerprints_differ(held.as_deref(), fingerprint.as_deref()) {
                            Err(FencedError::FingerprintMismatch)
                        } else {
                            Ok(FencedAnswer::Completed(receipt.clone()))
                        },
                    ),
                    // Claimable above: unreachable, and answered as the
                    // refusal no claim ever gets, so a judge notices.
                    Current::Absent | Current::Release { .. } => {
                        unchanged(Err(FencedError::Unclassified))
                    }
                }
            }
            FencedOp::Complete {
                token,
                receipt,
                now_millis,
            } => match &self.current {
                Current::Claim {
                    holder: Some(id),
                    fence,
                    fingerprint,
                    ..
                } if *id == token.claim_id => (
                    self.appended(Current::Completion {
                        holder: Some(*id),
                        fence: *fence,
                        receipt: receipt.clone(),
                        completed_at_millis: *now_millis,
                        fingerprint: fingerprint.clone(),
                    }),
                    Ok(FencedAnswer::Done),
                ),
                Current::Completion {
                    holder: Some(id),
                    receipt: stored,
                    ..
                } if *id == token.claim_id => unchanged(if stored == receipt {
                    Ok(FencedAnswer::Done)
                } else {
                    Err(FencedError::Collision)
                }),
                _ => unchanged(Err(FencedError::StaleClaim)),
            },
            FencedOp::Release { token, .. } => match &self.current {
                _ if self.holds(token) => (
                    self.appended(Current::Release {
                        holder: Some(token.claim_id),
                        reason: ReleaseReason::Holder,
                    }),
                    Ok(FencedAnswer::Done),
                ),
                Current::Release {
                    holder: Some(id), ..
                } if *id == token.claim_id => unchanged(Ok(FencedAnswer::Done)),
                _ => unchanged(Err(FencedError::StaleClaim)),
            },
            FencedOp::Renew { token, now_millis } => match &self.current {
                Current::Claim {
                    holder: Some(id),
                    fence,
                    fingerprint,
                    ..
                } if *id == token.claim_id => {
                    let lease_expires_millis = now_millis.saturating_add(params.lease_ms);
                    (
                        self.appended(Current::Claim {
                            holder: Some(*id),
                            fence: *fence,
                            lease_expires_millis,
                            fingerprint: fingerprint.clone(),
                        }),
                        Ok(FencedAnswer::Renewed(Token {
                            claim_id: *id,
                            fence: *fence,
                            lease_expires_millis,
                        })),
                    )
                }
                _ => unchanged(Err(FencedError::StaleClaim)),
            },
            FencedOp::Lookup { now_millis } => unchanged(Ok(match &self.current {
                _ if self.claimable(*now_millis, params) => FencedAnswer::Absent,
                Current::Claim {
                    lease_expires_millis,
                    ..
                } => FencedAnswer::InFlight {
                    lease_expires_millis: *lease_expires_millis,
                },
                Current::Completion { receipt, .. } => FencedAnswer::Completed(receipt.clone()),
                Current::Absent | Current::Release { .. } => FencedAnswer::Absent,
            })),
            FencedOp::Expire { now_millis } => {
                if !self.is_expired(*now_millis, params) {
                    // Nothing to expire: the sweeper appends nothing.
                    return unchanged(Err(FencedError::NoEffect));
                }
                let holder = match &self.current {
                    Current::Claim { holder, .. } | Current::Completion { holder, .. } => *holder,
                    Current::Absent | Current::Release { .. } => None,
                };
                (
                    self.appended(Current::Release {
                        holder,
                        reason: ReleaseReason::Expired,
                    }),
                    Ok(FencedAnswer::Done),
                )
            }
        }
    }

    /// Judges an observed answer of `op` from this state. `stream_shared`
    /// says the key's stream also holds another key's records, which makes
    /// a `DedupCollision` refusal admissible.
    #[must_use]
    pub fn judge(
        &self,
        op: &FencedOp,
        observed: &FencedResponse,
        params: &FencedParams,
        stream_shared: bool,
    ) -> Judgement<FencedState, FencedResponse> {
        let granted_id = match observed {
            Ok(FencedAnswer::Granted(token)) => Some(token.claim_id),
            _ => None,
        };
        let (next, expected) = self.apply(op, params, granted_id);
        let refused_without_effect = Judgement::Admissible(vec![self.clone()]);
        match observed {
            Ok(FencedAnswer::Granted(token)) if expected == *observed => {
                // The id is fresh: never zero, never the current record's.
                let reused = match &self.current {
                    Current::Claim { holder, .. }
                    | Current::Completion { holder, .. }
                    | Current::Release { holder, .. } => *holder == Some(token.claim_id),
                    Current::Absent => false,
                };
                if token.claim_id.is_zero() || reused {
                    Judgement::Inadmissible { expected }
                } else {
                    Judgement::Admissible(vec![next])
                }
            }
            Ok(_) if expected == *observed => Judgement::Admissible(vec![next]),
            Ok(FencedAnswer::Done) if self.completed_before(op) => {
                // A retried completion of a receipt the key once stored:
                // `Ok` (the receipt was stored) or `StaleClaim` (the key has
                // moved on), nothing written either way.
                refused_without_effect
            }
            Err(FencedError::StaleClaim) if self.released_for(op) => {
                // docs/spec.md ("Fenced API"): a release whose token's claim
                // was already ended (by its holder's release or by the
                // sweeper) may be answered Ok (a release with its claim id
                // is current) or StaleClaim.
                refused_without_effect
            }
            Ok(_) => Judgement::Inadmissible { expected },
            Err(FencedError::Unclassified) => Judgement::Unexplained {
                reason: format!("an error the oracle cannot classify answered {op:?}"),
            },
            Err(FencedError::Indeterminate) if next == *self => Judgement::Admissible(vec![next]),
            Err(FencedError::Indeterminate) => {
                // A grant nobody was told of holds an unknown claim id.
                let (unknown, _) = self.apply(op, params, None);
                Judgement::Admissible(vec![self.clone(), unknown])
            }
            Err(FencedError::NoEffect) => refused_without_effect,
            Err(FencedError::Collision) if stream_shared => refused_without_effect,
            Err(FencedError::Collision) if self.completed_otherwise_before(op) => {
                // A claim once completed with another receipt: the answer a
                // retried completion gets from its own completion, nothing
                // written (`docs/spec.md`, "Fenced API").
                refused_without_effect
            }
            Err(refusal) if expected == Err(*refusal) => refused_without_effect,
            Err(_) => Judgement::Inadmissible { expected },
        }
    }

    fn released_for(&self, op: &FencedOp) -> bool {
        matches!((op, &self.current),
            (FencedOp::Release { token, .. }, Current::Release { holder: Some(id), .. })
                if *id == token.claim_id)
    }
}

mod history;
pub use history::FencedHistoryOp;

#[cfg(test)]
mod tests;
