//! The decisions of the fenced single-key operations
//! (the semantics are in `docs/spec.md` and `docs/record-format.md`).

use std::fmt::Debug;
use std::hash::Hash;

use super::{Claim, ClaimToken, FencedState, KeyStatus, Times};
use crate::DurabilityError;
use crate::codec::{
    ClaimId, ClaimRecord, CompletionRecord, FencedRecord, ProcessingReceipt, ReleaseRecord,
};
use crate::core::Target;
use crate::limits::{MAX_CLAIM_ATTEMPTS, MAX_TOKEN_OP_ATTEMPTS};

/// What a rule decides from the stream it read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FencedPlan<T> {
    /// End the operation with this result.
    Finish(Result<T, DurabilityError>),
    /// Append this record at the stream's head.
    Append(FencedRecord),
}

/// The decisions of one kind of fenced operation.
pub trait FencedRule: Clone + Eq + Hash + Debug {
    /// What the operation ends with.
    type Output: Clone + Eq + Hash + Debug;

    /// Appends the operation makes at most before it reports the failure
    /// of its last one.
    const MAX_APPENDS: u32;

    /// The decision from the stream's last record (`head`: its sequence and
    /// the record) and the stream's length `next_seq`.
    fn decide(
        &self,
        target: &Target,
        head: Option<(u64, &FencedRecord)>,
        next_seq: u64,
    ) -> FencedPlan<Self::Output>;

    /// The result once `record`, this rule's own, is at `sequence`.
    fn landed(&self, record: &FencedRecord, sequence: u64) -> Self::Output;

    /// Whether `found`, a record of the same kind and claim id at the
    /// sequence an indeterminate append of `appended` was aimed at, is that
    /// append. The claim id alone says so for a grant (each claim draws its
    /// own) and for a release (two releases of one claim mean the same);
    /// two completions or renewals with one token may differ.
    fn resolves_as_own(found: &FencedRecord, appended: &FencedRecord) -> bool {
        let _ = (found, appended);
        true
    }

    /// True when a record that [`resolves_as_own`](FencedRule::resolves_as_own)
    /// may still be another operation's: two renewals of one token in the
    /// same millisecond write the same bytes, so a renewal cannot tell its
    /// own landed append from an earlier renewal's, and reports the
    /// append's indeterminate error instead of a token it may not own.
    const OWN_MAY_BE_ANOTHERS: bool = false;

    /// How many records the stream is known to hold before the operation
    /// reads it: a token's claim record was made durable before the token
    /// was handed out, so the stream holds at least `token.sequence + 1`.
    /// A read showing fewer is stale and decides nothing.
    fn known_len(&self) -> u64 {
        0
    }

    /// The append to try before reading anything, and the sequence it must
    /// land at: the record the rule would write if the stream were as the
    /// operation expects it (a claim: empty; a completion: the token's claim
    /// at the head). The conditional append is the check, as it lands only
    /// on exactly that head; a conflict means the guess was wrong and the
    /// operation reads the head and decides as usual. `None`: read first.
    ///
    /// A guess must stay recognisable when its append is indeterminate: the
    /// record at its sequence may then be an earlier operation's, appended
    /// before this one began. A grant's claim id is drawn per operation, and
    /// a completion with the same claim and receipt is a retried completion,
    /// answered `Ok` either way; a release or a renewal of the same claim by
    /// an earlier operation is not this one's, so those two read first.
    fn first_append(&self, target: &Target) -> Option<(FencedRecord, u64)> {
        let _ = target;
        None
    }
}

/// The sequence right after `token`'s claim record: where the token's own
/// operation appends while the claim is the stream's head.
fn after_claim(token: &ClaimToken) -> Option<u64> {
    token.sequence.checked_add(1)
}

/// The token's claim record as far as a completion needs it (key, claim
/// id, fence, fingerprint; a completion never copies the claim's times).
fn claim_of(token: &ClaimToken) -> ClaimRecord {
    ClaimRecord::new(
        token.key.clone(),
        token.claim_id,
        token.fence,
        0,
        0,
        token.fingerprint.clone(),
    )
}

fn mismatched(ours: Option<&[u8]>, theirs: Option<&[u8]>) -> bool {
    matches!((ours, theirs), (Some(ours), Some(theirs)) if ours != theirs)
}

fn stale(token: &ClaimToken) -> DurabilityError {
    DurabilityError::StaleClaim {
        key: token.key.clone(),
        fence: token.fence,
    }
}

/// The claim record `head` holds if it is `token`'s claim.
fn own_claim<'a>(
    token: &ClaimToken,
    head: Option<(u64, &'a FencedRecord)>,
) -> Option<&'a ClaimRecord> {
    match head {
        Some((_, FencedRecord::Claim(claim)))
            if claim.claim_id() == token.claim_id && claim.fence() == token.fence =>
        {
            Some(claim)
        }
        _ => None,
    }
}

fn token_of(claim: &ClaimRecord, sequence: u64) -> ClaimToken {
    debug_assert!(
        claim.fence() <= sequence,
        "a fence never exceeds its record's sequence"
    );
    ClaimToken {
        key: claim.idempotency_key().to_owned(),
        sequence,
        claim_id: claim.claim_id(),
        fence: claim.fence(),
        lease_expires_millis: claim.lease_expires_millis(),
        fingerprint: claim.fingerprint().map(<[u8]>::to_vec),
    }
}

/// `claim`: grant an absent or expired key, or say who has it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedClaimRule {
    /// The id a grant carries (drawn at random by the caller).
    pub claim_id: ClaimId,
    /// The message's fingerprint, if the caller gave one.
    pub fingerprint: Option<Vec<u8>>,
    /// The claim's time.
    pub now_millis: u64,
    /// Lease and receipt TTL.
    pub times: Times,
}

impl FencedClaimRule {
    /// The claim record granting the key at `sequence` (its fence).
    fn grant(&self, target: &Target, sequence: u64) -> FencedRecord {
        FencedRecord::Claim(ClaimRecord::new(
            target.key.clone(),
            self.claim_id,
            sequence,
            self.now_millis,
            self.times.lease_ms,
            self.fingerprint.clone(),
        ))
    }
}

impl FencedRule for FencedClaimRule {
    type Output = Claim;
    const MAX_APPENDS: u32 = MAX_CLAIM_ATTEMPTS;

    /// Most keys are new: a grant at sequence 0 lands on an empty stream.
    fn first_append(&self, target: &Target) -> Option<(FencedRecord, u64)> {
        Some((self.grant(target, 0), 0))
    }

    fn decide(
        &self,
        target: &Target,
        head: Option<(u64, &FencedRecord)>,
        next_seq: u64,
    ) -> FencedPlan<Claim> {
        // Our own claim id can only be there if an append of ours landed
        // (an indeterminate one, or one that landed late): it is our grant.
        if let Some((sequence, FencedRecord::Claim(claim))) = head
            && claim.claim_id() == self.claim_id
        {
            return FencedPlan::Finish(Ok(Claim::Granted(token_of(claim, sequence))));
        }
        let ours = self.fingerprint.as_deref();
        match FencedState::at(head.map(|(_, record)| record), self.now_millis, self.times) {
            FencedState::Absent | FencedState::ExpiredClaim | FencedState::ExpiredReceipt => {
                FencedPlan::Append(self.grant(target, next_seq))
            }
            FencedState::Held {
                fingerprint,
                lease_expires_millis,
                ..
            } => FencedPlan::Finish(if mismatched(ours, fingerprint.as_deref()) {
                Err(DurabilityError::FingerprintMismatch {
                    key: target.key.clone(),
                })
            } else {
                Ok(Claim::InFlight {
                    lease_expires_millis,
                })
            }),
            FencedState::Completed {
                receipt,
                fingerprint,
            } => FencedPlan::Finish(if mismatched(ours, fingerprint.as_deref()) {
                Err(DurabilityError::FingerprintMismatch {
                    key: target.key.clone(),
                })
            } else {
                Ok(Claim::Completed(receipt))
            }),
        }
    }

    fn landed(&self, record: &FencedRecord, sequence: u64) -> Claim {
        match record {
            FencedRecord::Claim(claim) => {
                debug_assert_eq!(claim.fence(), sequence, "a grant's fence is its sequence");
                Claim::Granted(token_of(claim, sequence))
            }
            // A claim rule appends nothing else (see `decide`).
            _ => Claim::InFlight {
                lease_expires_millis: 0,
            },
        }
    }
}

/// `complete`: store the receipt on the token's own claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedCompleteRule {
    /// Whose claim.
    pub token: ClaimToken,
    /// The receipt.
    pub receipt: ProcessingReceipt,
    /// The receipt's TTL anchor.
    pub now_millis: u64,
}

impl FencedRule for FencedCompleteRule {
    type Output = ();
    const MAX_APPENDS: u32 = MAX_TOKEN_OP_ATTEMPTS;

    fn known_len(&self) -> u64 {
        self.token.sequence.saturating_add(1)
    }

    fn first_append(&self, _target: &Target) -> Option<(FencedRecord, u64)> {
        let completion = CompletionRecord::of(
            &claim_of(&self.token),
            self.receipt.clone(),
            self.now_millis,
        );
        Some((
            FencedRecord::Completion(completion),
            after_claim(&self.token)?,
        ))
    }

    fn decide(
        &self,
        target: &Target,
        head: Option<(u64, &FencedRecord)>,
        _: u64,
    ) -> FencedPlan<()> {
        if let Some(claim) = own_claim(&self.token, head) {
            return FencedPlan::Append(FencedRecord::Completion(CompletionRecord::of(
                claim,
                self.receipt.clone(),
                self.now_millis,
            )));
        }
        match head {
            // A retried completion: done, nothing appended; another receipt
            // never replaces the stored one.
            Some((_, FencedRecord::Completion(done))) if done.claim_id() == self.token.claim_id => {
                FencedPlan::Finish(if *done.receipt() == self.receipt {
                    Ok(())
                } else {
                    Err(DurabilityError::DedupCollision {
                        key: target.key.clone(),
                    })
                })
            }
            _ => FencedPlan::Finish(Err(stale(&self.token))),
        }
    }

    fn resolves_as_own(found: &FencedRecord, appended: &FencedRecord) -> bool {
        matches!((found, appended), (FencedRecord::Completion(found), FencedRecord::Completion(ours))
            if found.receipt() == ours.receipt())
    }

    fn landed(&self, _record: &FencedRecord, _sequence: u64) {}
}

/// `release`: end the token's own claim (delivery failed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedReleaseRule {
    /// Whose claim.
    pub token: ClaimToken,
    /// The release's time.
    pub now_millis: u64,
}

impl FencedReleaseRule {
    fn release(&self, target: &Target) -> FencedRecord {
        FencedRecord::Release(ReleaseRecord::released(
            target.key.clone(),
            self.token.claim_id,
            self.token.fence,
            self.now_millis,
        ))
    }
}

impl FencedRule for FencedReleaseRule {
    type Output = ();
    const MAX_APPENDS: u32 = MAX_TOKEN_OP_ATTEMPTS;

    fn known_len(&self) -> u64 {
        self.token.sequence.saturating_add(1)
    }

    fn decide(
        &self,
        target: &Target,
        head: Option<(u64, &FencedRecord)>,
        _: u64,
    ) -> FencedPlan<()> {
        if own_claim(&self.token, head).is_some() {
            return FencedPlan::Append(self.release(target));
        }
        // Anything else is left as it is: the holder's own completion (a
        // receipt is never released), and a release of this very claim (a
        // retried release, or the sweeper's expiry): the claim is over
        // either way. A release found at the head is not answered `Ok`,
        // because the read may be a stale snapshot that hides a later
        // holder's claim; only this operation's own append, recognised by
        // its claim id, is (`docs/spec.md`, "Fenced API").
        FencedPlan::Finish(Err(stale(&self.token)))
    }

    fn landed(&self, _record: &FencedRecord, _sequence: u64) {}
}

/// `renew`: extend the token's own claim's lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedRenewRule {
    /// Whose claim.
    pub token: ClaimToken,
    /// The renewal's time; the new lease ends `lease_ms` later.
    pub now_millis: u64,
    /// The lease.
    pub lease_ms: u64,
}

impl FencedRule for FencedRenewRule {
    type Output = ClaimToken;
    const MAX_APPENDS: u32 = MAX_TOKEN_OP_ATTEMPTS;

    fn known_len(&self) -> u64 {
        self.token.sequence.saturating_add(1)
    }

    fn decide(
        &self,
        target: &Target,
        head: Option<(u64, &FencedRecord)>,
        _: u64,
    ) -> FencedPlan<ClaimToken> {
        match own_claim(&self.token, head) {
            Some(claim) => FencedPlan::Append(FencedRecord::Claim(ClaimRecord::new(
                target.key.clone(),
                self.token.claim_id,
                self.token.fence,
                self.now_millis,
                self.lease_ms,
                claim.fingerprint().map(<[u8]>::to_vec),
            ))),
            None => FencedPlan::Finish(Err(stale(&self.token))),
        }
    }

    const OWN_MAY_BE_ANOTHERS: bool = true;

    fn resolves_as_own(found: &FencedRecord, appended: &FencedRecord) -> bool {
        found == appended
    }

    fn landed(&self, record: &FencedRecord, sequence: u64) -> ClaimToken {
        match record {
            FencedRecord::Claim(claim) => {
                let token = token_of(claim, sequence);
                debug_assert_eq!(token.fence, self.token.fence, "a renewal keeps the fence");
                debug_assert!(token.sequence > self.token.sequence, "a renewal moves on");
                token
            }
            // A renew rule appends nothing else (see `decide`).
            _ => self.token.clone(),
        }
    }
}

/// `lookup`: report the key's state, never write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedLookupRule {
    /// The lookup's time.
    pub now_millis: u64,
    /// Lease and receipt TTL.
    pub times: Times,
}

impl FencedRule for FencedLookupRule {
    type Output = Option<KeyStatus>;
    const MAX_APPENDS: u32 = 0;

    fn decide(
        &self,
        _target: &Target,
        head: Option<(u64, &FencedRecord)>,
        _: u64,
    ) -> FencedPlan<Option<KeyStatus>> {
        let state = FencedState::at(head.map(|(_, record)| record), self.now_millis, self.times);
        FencedPlan::Finish(Ok(state.status()))
    }

    fn landed(&self, _record: &FencedRecord, _sequence: u64) -> Option<KeyStatus> {
        None
    }
}
