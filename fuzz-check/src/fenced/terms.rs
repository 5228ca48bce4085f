//! The engine's tokens and errors in the oracle's terms.

use atmostonce::DurabilityError;
use atmostonce::core::fenced::ClaimToken;
use atmostonce_verify::oracle::ErrorClass;
use atmostonce_verify::oracle::fenced::{FencedError, Token};
use atmostonce_verify::oracle::record::ClaimId;

/// The oracle's token for an engine token.
pub(super) fn token_of(token: &ClaimToken) -> Token {
    Token {
        claim_id: ClaimId(*token.claim_id().as_bytes()),
        fence: token.fence(),
        lease_expires_millis: token.lease_expires_millis(),
    }
}

/// An engine error in the oracle's terms: the fenced refusals by name, the
/// rest by the oracle's error classes.
pub(super) fn classify(error: &DurabilityError) -> FencedError {
    match error {
        DurabilityError::StaleClaim { .. } => FencedError::StaleClaim,
        DurabilityError::FingerprintMismatch { .. } => FencedError::FingerprintMismatch,
        _ => match ErrorClass::of(error) {
            ErrorClass::Indeterminate => FencedError::Indeterminate,
            ErrorClass::NoEffect => FencedError::NoEffect,
            ErrorClass::Collision => FencedError::Collision,
            ErrorClass::Unclassified => FencedError::Unclassified,
        },
    }
}
