//! Key hashing: how a key's stream is named (`docs/spec.md`, "Streams").
//! FNV-1a 64 as the seed system names its streams (the default), or a keyed
//! SipHash-2-4-128 for namespaces whose keys come from untrusted clients.

use std::fmt::Write as _;

use siphasher::sip128::SipHasher24;

/// What a keyed stream name carries between the namespace's colon and the
/// hash, so that it can never be mistaken for an FNV-1a name (16 hex
/// digits, no tag).
pub const SIPHASH24_STREAM_TAG: &str = "sip24-";

/// How a cache names the stream of a key: the hash in
/// `"{namespace}:{hash}"`. Chosen per namespace, in
/// [`DedupOptions::with_key_hash`](crate::DedupOptions::with_key_hash) or
/// [`FencedOptions::with_key_hash`](crate::fenced::FencedOptions::with_key_hash);
/// every process serving the namespace must use the same one.
///
/// ```
/// use atmostonce::{DedupCache, DedupOptions, KeyHash, MemoryStore};
/// use std::sync::Arc;
///
/// let secret = *b"sixteen byte key"; // in production: 16 random bytes, kept secret
/// let options = DedupOptions::default().with_key_hash(KeyHash::SipHash24 { secret });
/// let cache = DedupCache::with_options(Arc::new(MemoryStore::new()), "orders", options).unwrap();
/// assert!(cache.stream_key_for("a").starts_with("orders:sip24-"));
/// assert_eq!(cache.stream_key_for("a").len(), "orders:sip24-".len() + 32);
/// // The secret never shows in debug output.
/// assert!(!format!("{options:?}").contains("sixteen"));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyHash {
    /// FNV-1a 64 over the key's UTF-8 bytes, as 16 lowercase hex digits:
    /// the seed's naming, and the default. Anyone can compute it, so a
    /// client choosing its own keys can make two keys collide on purpose;
    /// the engine then refuses the second key (`DedupCollision`) and never
    /// mixes them, but that key is unusable (a denial of service).
    #[default]
    Fnv1a64,
    /// SipHash-2-4 with a 128-bit output, keyed with `secret`, as
    /// `sip24-` and 32 lowercase hex digits: without the secret nobody can
    /// tell which keys collide, and a chance collision of 128 bits does not
    /// happen.
    SipHash24 {
        /// The 16-byte SipHash key. Keep it secret, keep it stable (another
        /// secret names every key's stream anew), and never all zero.
        secret: [u8; 16],
    },
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyHash::Fnv1a64 => f.write_str("Fnv1a64"),
            KeyHash::SipHash24 { .. } => f
                .debug_struct("SipHash24")
                .field("secret", &"<redacted>")
                .finish(),
        }
    }
}

impl KeyHash {
    /// The hash part of `key`'s stream name; `hash_bits` narrows the FNV-1a
    /// hash only (the keyed hash is always whole).
    pub(crate) fn stream_suffix(&self, key: &str, hash_bits: u8) -> String {
        match self {
            KeyHash::Fnv1a64 => key_hash_bits(key, hash_bits),
            KeyHash::SipHash24 { secret } => {
                let digest = SipHasher24::new_with_key(secret)
                    .hash(key.as_bytes())
                    .as_bytes();
                let mut suffix = String::with_capacity(SIPHASH24_STREAM_TAG.len() + 32);
                suffix.push_str(SIPHASH24_STREAM_TAG);
                for byte in digest {
                    // Writing to a String cannot fail.
                    let _ = write!(suffix, "{byte:02x}");
                }
                suffix
            }
        }
    }
}

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The full 64-bit FNV-1a hash of the key's UTF-8 bytes.
#[must_use]
pub fn fnv1a64(key: &str) -> u64 {
    key.as_bytes().iter().fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The seed's stream suffix for `key`: FNV-1a 64 as 16 lowercase hex digits.
///
/// ```
/// assert_eq!(atmostonce::key_hash(""), "cbf29ce484222325");
/// assert_eq!(atmostonce::key_hash("a"), "af63dc4c8601ec8c");
/// ```
#[must_use]
pub fn key_hash(key: &str) -> String {
    key_hash_bits(key, 64)
}

/// [`key_hash`] keeping only the low `bits` bits of the hash (1..=64), still
/// printed as 16 hex digits. Narrow hash spaces exist to test collision
/// handling; production caches use all 64 bits.
#[must_use]
pub fn key_hash_bits(key: &str, bits: u8) -> String {
    let mask = match bits {
        0 => 0,
        64.. => u64::MAX,
        n => (1u64 << n) - 1,
    };
    format!("{:016x}", fnv1a64(key) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_matches_published_fnv1a_vectors() {
        assert_eq!(key_hash(""), "cbf29ce484222325");
        assert_eq!(key_hash("a"), "af63dc4c8601ec8c");
        assert_eq!(key_hash("foobar"), "85944171f73967e8");
    }

    #[test]
    fn a_keyed_name_is_tagged_and_depends_on_the_secret() {
        let one = KeyHash::SipHash24 { secret: [1; 16] };
        let two = KeyHash::SipHash24 { secret: [2; 16] };
        let name = one.stream_suffix("a", 64);
        assert!(name.starts_with(SIPHASH24_STREAM_TAG), "{name}");
        assert_eq!(name.len(), SIPHASH24_STREAM_TAG.len() + 32);
        assert_ne!(name, two.stream_suffix("a", 64));
        assert_eq!(KeyHash::Fnv1a64.stream_suffix("a", 64), key_hash("a"));
    }

    #[test]
    fn a_narrow_hash_space_keeps_the_low_bits() {
        assert_eq!(key_hash_bits("a", 8), "000000000000008c");
        assert_eq!(key_hash_bits("a", 64), key_hash("a"));
    }
}
