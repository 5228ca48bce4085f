//! Every bound the engine enforces, with the reason for its value.
//!
//! Inputs over a limit are refused with
//! [`DurabilityError::LimitExceeded`](crate::DurabilityError::LimitExceeded)
//! before anything is written.

/// Longest idempotency key, in UTF-8 bytes. Keys are identifiers (UUIDs,
/// request ids, hashes); 1 KiB leaves room for composite keys while keeping
/// every record of a stream small.
pub const MAX_KEY_BYTES: usize = 1024;

/// Longest receipt, in bytes. A receipt is what a duplicate gets back (an
/// id, a status, a small response body); 64 KiB bounds the cost of every
/// read of a completed key.
pub const MAX_RECEIPT_BYTES: usize = 64 * 1024;

/// Longest namespace, in UTF-8 bytes. It prefixes every stream name.
pub const MAX_NAMESPACE_BYTES: usize = 256;

/// Records fetched per `read_from` call by default. Large enough that a
/// typical stream is read in one call.
pub const DEFAULT_READ_BATCH: usize = 256;

/// Largest allowed read batch: bounds the memory one store call returns.
pub const MAX_READ_BATCH: usize = 4096;

/// Re-reads an operation makes to learn whether an append answered with an
/// indeterminate error took effect, before it gives the error back. A store
/// that fails this many reads in a row is down; retrying longer only hides it.
pub const MAX_RESOLVE_READS: u32 = 3;

/// Reads a fenced operation makes while the store keeps answering with
/// fewer records than the stream is known to hold (stale snapshots), before
/// it gives up with an indeterminate error. A stale snapshot is a transient
/// of a replicated or cached store; one that persists this long is a store
/// to report, not to wait on.
pub const MAX_SHORT_READS: u32 = 4;

/// Times a completion re-reads and decides again after losing an append race.
/// Each lost race means another writer made progress on this key, so a few
/// rounds settle it; more would only spin against a misbehaving store.
pub const MAX_CONFLICT_ROUNDS: u32 = 8;

/// Milliseconds the sweeper waits past an entry's TTL before it expires the
/// entry, so that producers whose clocks run behind the sweeper's are not
/// expired early (the seed system's clock-skew grace).
pub const CLOCK_SKEW_GRACE_MS: u64 = 1_000;

/// Longest message fingerprint a fenced claim carries, in bytes. A
/// fingerprint is a digest (SHA-256 is 32 bytes, SHA-512 64); 256 bytes leaves
/// room for any digest with its algorithm name and keeps claim records small.
pub const MAX_FINGERPRINT_BYTES: usize = 256;

/// Times a fenced claim appends before it reports the lost race (or the
/// indeterminate error) it last saw. Each lost race means another writer
/// moved the key on (a release, an expiry, a takeover), after which deciding
/// again usually settles it; past this many the store or the contention is
/// pathological and the caller should back off.
pub const MAX_CLAIM_ATTEMPTS: u32 = 8;

/// Times a fenced complete, release or renew appends before it reports the
/// lost race (or indeterminate error) it last saw; the same reasoning as
/// [`MAX_CLAIM_ATTEMPTS`].
pub const MAX_TOKEN_OP_ATTEMPTS: u32 = 8;

/// Times the fenced API draws a claim id before it gives up: the all-zero id
/// is reserved, and sixteen random bytes are all zero with probability
/// 2^-128, so a second draw that is zero too means the randomness is broken.
pub const MAX_CLAIM_ID_DRAWS: u32 = 2;

/// Longest lease a fenced claim may ask for, in milliseconds (one week): a
/// holder that needs longer should renew; a longer lease would keep a key
/// blocked for that long after its holder crashed.
pub const MAX_LEASE_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Streams per page of a fenced sweep (`scan_heads`' limit), by default and
/// at most ([`FencedOptions::sweep_page_streams`] may lower it), and so the
/// most stream heads a sweep holds in memory at once.
///
/// [`FencedOptions::sweep_page_streams`]: crate::fenced::FencedOptions::sweep_page_streams A page costs one store call;
/// 256 heads of records bounded by [`MAX_KEY_BYTES`] and
/// [`MAX_RECEIPT_BYTES`] are at most about 16 MiB in the worst case and a few
/// tens of KiB for typical keys and receipts, while a sweep of a million
/// keys still takes only about 4,000 page calls.
pub const SWEEP_PAGE_STREAMS: usize = 256;

/// Store calls the driver makes for one operation before it stops it with an
/// error. No correct operation comes near it: a single-key operation reads
/// its head a bounded number of times (at most [`MAX_CONFLICT_ROUNDS`] +
/// [`MAX_RESOLVE_READS`] rounds, or [`MAX_CLAIM_ATTEMPTS`] appends), each
/// read one or two calls, and a fenced sweep makes one call per page
/// of [`SWEEP_PAGE_STREAMS`] heads, two flushes per page, and at most three
/// calls per key (a head re-read, an expiry, a compaction). 2^24 (about 16.8
/// million) calls is more than a stream a read returns into memory, and
/// more than a sweep that expires and compacts five million keys in one pass
/// needs; a store that keeps an
/// operation going past it (an endless stream) or an engine bug is reported
/// instead of hanging the caller.
pub const MAX_DRIVER_STEPS: u64 = 1 << 24;
