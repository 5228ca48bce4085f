//! Key hashing: FNV-1a, 64-bit, as the seed system names its streams.

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
    fn a_narrow_hash_space_keeps_the_low_bits() {
        assert_eq!(key_hash_bits("a", 8), "000000000000008c");
        assert_eq!(key_hash_bits("a", 64), key_hash("a"));
    }
}
