//! When an entry has expired (`docs/spec.md`, "Expiry").
//!
//! Written from the specification, not taken from the engine's sweeper: a
//! sweeper whose boundary is off by one is then judged wrong by every
//! checker instead of agreeing with itself.

/// The clock-skew grace the specification adds to every TTL before an entry
/// may expire, in milliseconds.
pub const CLOCK_SKEW_GRACE_MS: u64 = 1_000;

/// True when an entry anchored at `anchor_millis` with a TTL of `ttl_ms` may
/// be expired by a sweep whose clock reads `now_millis`: strictly after
/// anchor + TTL + grace. Sums that overflow never expire.
#[must_use]
pub fn is_expired(anchor_millis: u64, ttl_ms: u64, now_millis: u64) -> bool {
    match anchor_millis
        .checked_add(ttl_ms)
        .and_then(|sum| sum.checked_add(CLOCK_SKEW_GRACE_MS))
    {
        Some(deadline) => now_millis > deadline,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_expires_strictly_after_ttl_plus_grace() {
        assert!(!is_expired(100, 50, 100 + 50 + CLOCK_SKEW_GRACE_MS));
        assert!(is_expired(100, 50, 100 + 50 + CLOCK_SKEW_GRACE_MS + 1));
    }

    #[test]
    fn an_overflowing_deadline_never_expires() {
        assert!(!is_expired(u64::MAX - 10, 50, u64::MAX));
    }
}
