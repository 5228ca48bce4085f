//! A `cache_ops_fenced` input: the program's settings, keys and actions, as
//! the fuzzer's bytes describe them (`arbitrary`). Their layout is the
//! corpus's: changing a type here reinterprets every committed input.

use arbitrary::{Arbitrary, Unstructured};
use atmostonce::core::AppendDurability;
use atmostonce::core::fenced::{FencedOptions, FencedProtocol};
use atmostonce_verify::oracle::fenced::FencedParams;
use atmostonce_verify::table::Corruption;

use crate::program::{Fault, HashWidth, KEY_SLOTS, KeyChoice, NAMESPACE};

/// Lease and receipt TTL are counted in steps of this many milliseconds: a
/// few clock advances of up to [`MAX_ADVANCE_MS`](crate::program::MAX_ADVANCE_MS)
/// cross either one plus the 1000 ms grace.
pub const TIME_STEP_MS: u64 = 16;
/// The fingerprints a claim may carry (besides none): two different
/// messages, so that both a matching and a mismatching duplicate happen.
pub const FINGERPRINTS: [&[u8]; 2] = [b"message-a", b"message-b"];

/// A `cache_ops_fenced` input.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct FencedProgram {
    /// How the cache is set up.
    pub config: FencedConfig,
    /// The keys operations name (by index modulo [`KEY_SLOTS`]).
    pub keys: [KeyChoice; KEY_SLOTS],
    /// What happens, in order.
    pub actions: Vec<FencedAction>,
}

/// A fenced program's cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub struct FencedConfig {
    /// Bits of the key hash in stream names: narrow widths force collisions.
    pub hash: HashWidth,
    /// Streams per sweep page, 1 + this modulo 4.
    pub sweep_page: u8,
    /// Whether the engine flushes before acknowledging a write and before
    /// deciding on a read. Off models a store whose acknowledged appends are
    /// durable: store crashes are then not injected.
    pub flush_appends: bool,
    /// The lease, `(1 + lease_steps) * TIME_STEP_MS` ms.
    pub lease_steps: u8,
    /// The receipt TTL, `(1 + receipt_ttl_steps) * TIME_STEP_MS` ms.
    pub receipt_ttl_steps: u8,
}

/// Where a claim's id comes from. The engine draws ids at random, so two
/// claims of one key never share one (`docs/spec.md`, "Fenced API": a fresh
/// random claim id); the program keeps that precondition and otherwise
/// makes ids as alike as it can, so that a resolution that compared less
/// than the whole id would take a foreign claim for its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum ClaimIdChoice {
    /// An id no claim of the program had.
    Fresh,
    /// The id of an earlier claim (index modulo their count, newest first),
    /// when that claim was on another key; a fresh id otherwise.
    CopyOf(u8),
    /// The id of an earlier claim with one byte changed (`byte` modulo 16);
    /// a fresh id if that one was already drawn for the key.
    NearCopyOf {
        /// Which earlier claim, as in [`ClaimIdChoice::CopyOf`].
        claim: u8,
        /// Which byte of its id differs.
        byte: u8,
    },
}

/// An operation a fenced program invokes. The token operations take a
/// token the program was handed (index modulo their count, 0 the newest),
/// so old, stale tokens are used as often as current ones; they are
/// skipped while no token was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum FencedOpKind {
    /// `claim(key, claim_id, fingerprint, now)`.
    Claim {
        /// The claim id.
        id: ClaimIdChoice,
        /// 0 (modulo 3): none; otherwise one of [`FINGERPRINTS`].
        fingerprint: u8,
    },
    /// `complete(token, receipt_for(receipt), now)`.
    Complete {
        /// Which token.
        token: u8,
        /// The receipt's index ([`crate::program::receipt_for`]).
        receipt: u8,
    },
    /// `release(token, now)`.
    Release {
        /// Which token.
        token: u8,
    },
    /// `renew(token, now)`.
    Renew {
        /// Which token.
        token: u8,
    },
    /// `lookup(key, now)`.
    Lookup,
    /// One sweep of the namespace (the key is ignored).
    Sweep,
}

/// Damage to a stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Damage {
    /// Flip one bit.
    BitFlip {
        /// The byte (modulo the record's length).
        byte: u16,
        /// The bit (modulo 8).
        bit: u8,
    },
    /// Cut the record to `len` bytes (modulo its length).
    Truncate {
        /// Bytes kept.
        len: u8,
    },
}

impl Damage {
    /// The table's corruption for a record of `len` bytes.
    #[must_use]
    pub fn corruption(self, len: usize) -> Corruption {
        match self {
            Damage::BitFlip { byte, bit } => Corruption::BitFlip {
                byte: usize::from(byte),
                bit,
            },
            Damage::Truncate { len: kept } => Corruption::Truncate {
                len: usize::from(kept) % len.max(1),
            },
        }
    }
}

/// One step of a fenced program.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum FencedAction {
    /// Invoke `op` on key `key` in slot `slot`; ignored when the slot is busy.
    Start {
        /// The slot (modulo [`SLOTS`](crate::program::SLOTS)).
        slot: u8,
        /// The key's index (modulo [`KEY_SLOTS`]).
        key: u8,
        /// The operation.
        op: FencedOpKind,
    },
    /// Serve the pending request of the operation in `slot` with `fault`.
    Step {
        /// The slot.
        slot: u8,
        /// What the store does.
        fault: Fault,
    },
    /// Move the clock forward by `millis` modulo
    /// [`MAX_ADVANCE_MS`](crate::program::MAX_ADVANCE_MS).
    Advance {
        /// How far.
        millis: u16,
    },
    /// Crash the store: every stream drops back to its flushed prefix
    /// (only when the program's engine flushes; see [`FencedConfig`]).
    Crash,
    /// Damage the record at `sequence` (modulo the stream's length) of the
    /// stream of key `key`; ignored on an empty stream.
    Corrupt {
        /// The key's index.
        key: u8,
        /// Which record.
        sequence: u8,
        /// How.
        damage: Damage,
    },
}

impl FencedProgram {
    /// The program the fuzzer's bytes describe, built as libfuzzer-sys
    /// builds a typed target's input; `None` when they describe none.
    #[must_use]
    pub fn from_bytes(data: &[u8]) -> Option<FencedProgram> {
        FencedProgram::arbitrary_take_rest(Unstructured::new(data)).ok()
    }

    /// The key-hash width of the program's stream names.
    #[must_use]
    pub fn hash_bits(&self) -> u8 {
        match self.config.hash {
            HashWidth::Full => 64,
            HashWidth::OneBit => 1,
            HashWidth::TwoBits => 2,
        }
    }

    /// The lease and receipt TTL, as the oracle takes them.
    #[must_use]
    pub fn params(&self) -> FencedParams {
        FencedParams {
            lease_ms: (1 + u64::from(self.config.lease_steps)) * TIME_STEP_MS,
            receipt_ttl_ms: (1 + u64::from(self.config.receipt_ttl_steps)) * TIME_STEP_MS,
        }
    }

    /// The engine's protocol for the program.
    #[must_use]
    pub fn protocol(&self) -> FencedProtocol {
        let params = self.params();
        let options = FencedOptions::default()
            .with_lease_ms(params.lease_ms)
            .with_receipt_ttl_ms(params.receipt_ttl_ms)
            .with_sweep_page_streams(1 + usize::from(self.config.sweep_page % 4))
            .with_hash_bits(self.hash_bits());
        let durability = if self.config.flush_appends {
            AppendDurability::NeedsFlush
        } else {
            AppendDurability::Durable
        };
        match FencedProtocol::new(NAMESPACE, options, durability) {
            Ok(protocol) => protocol,
            // The namespace is a valid constant; the lease is at most
            // 256 * 16 ms, far below the engine's limit; the rest is
            // clamped into its documented range above.
            Err(error) => unreachable!("a fenced program's protocol is always valid: {error}"),
        }
    }
}

/// The fingerprint a choice names.
#[must_use]
pub fn fingerprint_for(choice: u8) -> Option<&'static [u8]> {
    match choice % 3 {
        0 => None,
        n => FINGERPRINTS.get(usize::from(n) - 1).copied(),
    }
}
