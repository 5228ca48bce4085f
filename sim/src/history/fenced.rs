//! What a history holds of a fenced-API operation beyond its seed-API view:
//! the operation and its answer in the oracle's fenced vocabulary
//! (`atmostonce_verify::oracle::fenced`), and the translations from the
//! engine's values into it.
//!
//! Every operation of a history keeps its [`SpecOp`] (the seed
//! specification's name for it: what it is, which receipt it stores, what it
//! answered), so the rules that only ask those questions (S3, S6, A2, the
//! timeline) read both APIs alike. A fenced operation also carries a
//! [`FencedCall`], which the fenced rules (S1, S2, S4, S5, S7, A1) judge.

use atmostonce::fenced::{Claim, ClaimToken, KeyStatus};
use atmostonce::{DedupDecision, DurabilityError};
use atmostonce_verify::oracle::fenced::{
    FencedAnswer, FencedError, FencedOp, FencedResponse, Token,
};
use atmostonce_verify::oracle::record::ClaimId;
use atmostonce_verify::oracle::{ErrorClass, SpecAnswer, SpecOp};

/// A fenced operation as the oracle's sequential specification sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencedCall {
    /// The operation, with the caller's token as plain values.
    pub op: FencedOp,
    /// Its answer, classified; `None` while (or when) it never answered.
    pub answer: Option<FencedResponse>,
}

/// The oracle's view of an engine token: its claim id, fence and lease end.
#[must_use]
pub fn token_of(token: &ClaimToken) -> Token {
    Token {
        claim_id: ClaimId(*token.claim_id().as_bytes()),
        fence: token.fence(),
        lease_expires_millis: token.lease_expires_millis(),
    }
}

/// The oracle's class of an engine error (`docs/spec.md`, "Error
/// classes"): the two fenced refusals by name, everything else by
/// [`ErrorClass::of`]; an error the oracle does not know stays unclassified.
#[must_use]
pub fn classify(error: &DurabilityError) -> FencedError {
    match error {
        DurabilityError::StaleClaim { .. } => FencedError::StaleClaim,
        DurabilityError::FingerprintMismatch { .. } => FencedError::FingerprintMismatch,
        other => match ErrorClass::of(other) {
            ErrorClass::Indeterminate => FencedError::Indeterminate,
            ErrorClass::NoEffect => FencedError::NoEffect,
            ErrorClass::Collision => FencedError::Collision,
            ErrorClass::Unclassified => FencedError::Unclassified,
        },
    }
}

/// The seed specification's name for a fenced operation. A renewal is none
/// of the seed's operations; it is named as the read it is to the seed
/// rules (it grants nothing, stores no receipt and ends no claim), and
/// [`crate::history::OpRecord::name`] calls it `renew`.
#[must_use]
pub fn seed_view(op: &FencedOp) -> SpecOp {
    match op {
        FencedOp::Claim { now_millis, .. } => SpecOp::Claim {
            now_millis: *now_millis,
        },
        FencedOp::Complete {
            receipt,
            now_millis,
            ..
        } => SpecOp::Complete {
            receipt: receipt.clone(),
            timestamp_millis: *now_millis,
        },
        FencedOp::Release { .. } => SpecOp::Release,
        FencedOp::Renew { .. } | FencedOp::Lookup { .. } => SpecOp::Lookup,
        FencedOp::Expire { .. } => SpecOp::Expire,
    }
}

/// The seed specification's name for a fenced answer: a grant is
/// `Claimed`, a lookup's status its seed decision, and every other success
/// `Done`.
#[must_use]
pub fn seed_answer(answer: &FencedAnswer, op: &FencedOp) -> SpecAnswer {
    let lookup = matches!(op, FencedOp::Lookup { .. });
    let decision = match answer {
        FencedAnswer::Granted(_) => DedupDecision::Claimed,
        FencedAnswer::InFlight { .. } => DedupDecision::InFlight,
        FencedAnswer::Completed(receipt) => DedupDecision::Completed(receipt.clone()),
        FencedAnswer::Absent => return SpecAnswer::Lookup(None),
        FencedAnswer::Done | FencedAnswer::Renewed(_) => return SpecAnswer::Done,
    };
    if lookup {
        SpecAnswer::Lookup(Some(decision))
    } else {
        SpecAnswer::Decision(decision)
    }
}

/// A claim's answer in the oracle's words. `Claim` is non-exhaustive: an
/// answer the oracle has no word for is [`FencedError::Unclassified`], which
/// the checker reports as an internal error.
pub fn claim_answer(claim: &Claim) -> FencedResponse {
    match claim {
        Claim::Granted(token) => Ok(FencedAnswer::Granted(token_of(token))),
        Claim::InFlight {
            lease_expires_millis,
            ..
        } => Ok(FencedAnswer::InFlight {
            lease_expires_millis: *lease_expires_millis,
        }),
        Claim::Completed(receipt) => Ok(FencedAnswer::Completed(receipt.clone())),
        _ => Err(FencedError::Unclassified),
    }
}

/// A lookup's answer in the oracle's words (unknown statuses as for
/// [`claim_answer`]).
pub fn lookup_answer(status: &Option<KeyStatus>) -> FencedResponse {
    match status {
        None => Ok(FencedAnswer::Absent),
        Some(KeyStatus::InFlight {
            lease_expires_millis,
            ..
        }) => Ok(FencedAnswer::InFlight {
            lease_expires_millis: *lease_expires_millis,
        }),
        Some(KeyStatus::Completed(receipt)) => Ok(FencedAnswer::Completed(receipt.clone())),
        Some(_) => Err(FencedError::Unclassified),
    }
}
