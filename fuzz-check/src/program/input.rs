//! A `cache_ops` input: the program's settings, keys and actions, as the
//! fuzzer's bytes describe them (`arbitrary`). Their layout is the corpus's:
//! changing a type here reinterprets every committed input.

use arbitrary::{Arbitrary, Unstructured};
use atmostonce::core::{AppendDurability, Protocol};
use atmostonce::{DedupOptions, ProcessingReceipt};
use atmostonce_verify::oracle::SpecOp;
use atmostonce_verify::table::CallFault;

use super::{KEY_PRESETS, KEY_SLOTS, MAX_STALE_LAG, MAX_TTL_MS};

/// The namespace every program's cache uses.
pub const NAMESPACE: &str = "fuzz";

/// A `cache_ops` input.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct Program {
    /// How the cache and sweeper are set up.
    pub config: Config,
    /// The keys operations name (by index modulo [`KEY_SLOTS`]).
    pub keys: [KeyChoice; KEY_SLOTS],
    /// What happens, in order.
    pub actions: Vec<Action>,
}

/// A program's cache and sweeper settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub struct Config {
    /// Bits of the key hash in stream names: narrow widths force collisions.
    pub hash: HashWidth,
    /// Records per read, 1 + this modulo 4: small batches reach the paths
    /// of streams longer than one read.
    pub read_batch: u8,
    /// Whether the engine flushes after appending (as against a store whose
    /// acknowledged appends are not yet durable).
    pub flush_appends: bool,
    /// The TTL, as `ttl_16ms_steps * 16` ms modulo [`MAX_TTL_MS`].
    pub ttl_16ms_steps: u8,
}

/// Key-hash width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum HashWidth {
    /// All 64 bits (the production setting).
    Full,
    /// One bit: two streams for all keys.
    OneBit,
    /// Two bits: four streams.
    TwoBits,
}

/// A key of the program.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum KeyChoice {
    /// One of [`KEY_PRESETS`] (index modulo its length).
    Preset(u8),
    /// Any string (the engine refuses empty and over-long ones).
    Custom(String),
}

impl KeyChoice {
    /// The key text.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            KeyChoice::Preset(index) => {
                KEY_PRESETS[usize::from(*index) % KEY_PRESETS.len()].to_owned()
            }
            KeyChoice::Custom(text) => text.clone(),
        }
    }
}

/// An operation a program (or a property test) invokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum OpKind {
    /// `claim_or_get(key, now)`.
    Claim,
    /// `lookup(key)`.
    Lookup,
    /// `complete_receipt_at(key, receipt_for(receipt), now)`.
    Complete {
        /// The receipt's index, see [`receipt_for`].
        receipt: u8,
    },
    /// `release_claim_at(key, now)`.
    Release,
    /// `sweep_once(now)` over the whole namespace (the key is ignored).
    Sweep,
}

impl OpKind {
    /// The specification's name for this operation on one key; `None` for a
    /// sweep, which is judged as one `Expire` per tombstone it appends.
    #[must_use]
    pub fn spec_op(&self, now_millis: u64) -> Option<SpecOp> {
        match self {
            OpKind::Claim => Some(SpecOp::Claim { now_millis }),
            OpKind::Lookup => Some(SpecOp::Lookup),
            OpKind::Complete { receipt } => Some(SpecOp::Complete {
                receipt: receipt_for(*receipt),
                timestamp_millis: now_millis,
            }),
            OpKind::Release => Some(SpecOp::Release),
            OpKind::Sweep => None,
        }
    }
}

/// The receipt an index names: a small set, so that completions with equal
/// receipts (a retry) and different ones (a conflict) both happen. Index 2
/// is the empty receipt.
#[must_use]
pub fn receipt_for(index: u8) -> ProcessingReceipt {
    match index % 3 {
        0 => ProcessingReceipt::new(b"receipt-0".to_vec()),
        1 => ProcessingReceipt::new(b"receipt-1".to_vec()),
        _ => ProcessingReceipt::new(Vec::new()),
    }
}

/// What the store does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Fault {
    /// Serve it correctly.
    None,
    /// Answer with an indeterminate `StoreError`. An append is applied
    /// first if `applied` (and it fits); a read, scan or flush just fails.
    Indeterminate {
        /// Whether an append takes effect before the error answer.
        applied: bool,
    },
    /// Serve a read or scan from an older snapshot: each stream without its
    /// newest `1 + lag % MAX_STALE_LAG` records. Other requests are served
    /// correctly.
    Stale {
        /// How far behind.
        lag: u8,
    },
}

impl Fault {
    /// The fault table's fault for this one.
    #[must_use]
    pub fn call_fault(self) -> CallFault {
        match self {
            Fault::None => CallFault::None,
            Fault::Indeterminate { applied: true } => CallFault::ErrorApplied,
            Fault::Indeterminate { applied: false } => CallFault::ErrorLost,
            Fault::Stale { lag } => {
                // Bounded by MAX_STALE_LAG, so the conversion cannot fail.
                let lag = 1 + u64::from(lag) % MAX_STALE_LAG;
                CallFault::StaleBy(usize::try_from(lag).unwrap_or(usize::MAX))
            }
        }
    }
}

/// One step of a program.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Action {
    /// Invoke `op` on key `key` in slot `slot` (both modulo their counts);
    /// ignored when the slot is busy.
    Start {
        /// The slot.
        slot: u8,
        /// The key's index.
        key: u8,
        /// The operation.
        op: OpKind,
    },
    /// Serve the pending request of the operation in `slot` with `fault`;
    /// ignored when the slot is free.
    Step {
        /// The slot.
        slot: u8,
        /// What the store does.
        fault: Fault,
    },
    /// Move the clock forward by `millis` modulo
    /// [`MAX_ADVANCE_MS`](super::MAX_ADVANCE_MS).
    Advance {
        /// How far.
        millis: u16,
    },
}

impl Program {
    /// The program the fuzzer's bytes describe, built as libfuzzer-sys
    /// builds a typed target's input (`arbitrary_take_rest`); `None` when
    /// they describe none.
    #[must_use]
    pub fn from_bytes(data: &[u8]) -> Option<Program> {
        Program::arbitrary_take_rest(Unstructured::new(data)).ok()
    }

    pub(crate) fn hash_bits(&self) -> u8 {
        match self.config.hash {
            HashWidth::Full => 64,
            HashWidth::OneBit => 1,
            HashWidth::TwoBits => 2,
        }
    }

    pub(crate) fn protocol(&self) -> Protocol {
        let options = DedupOptions::default()
            .with_read_batch(1 + usize::from(self.config.read_batch % 4))
            .with_hash_bits(self.hash_bits());
        let durability = if self.config.flush_appends {
            AppendDurability::NeedsFlush
        } else {
            AppendDurability::Durable
        };
        match Protocol::new(NAMESPACE, options, durability) {
            Ok(protocol) => protocol,
            // The namespace is a valid constant and both options are
            // clamped into their documented ranges above.
            Err(error) => unreachable!("a program's protocol is always valid: {error}"),
        }
    }

    pub(crate) fn ttl_ms(&self) -> u64 {
        (u64::from(self.config.ttl_16ms_steps) * 16) % MAX_TTL_MS
    }
}
