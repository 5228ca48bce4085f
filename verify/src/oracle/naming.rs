//! Which stream holds a key's records (`docs/spec.md`, "Streams").
//!
//! Written from the specification: FNV-1a 64-bit over the key's UTF-8 bytes
//! (offset basis 0xcbf29ce484222325, prime 0x100000001b3), as 16 lowercase
//! hex digits after the namespace and a colon; a test configuration may keep
//! only the hash's low bits.

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64-bit of `bytes`.
#[must_use]
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The name of the stream that holds `key`'s records in `namespace`.
#[must_use]
pub fn stream_name(namespace: &str, key: &str) -> String {
    format!("{namespace}:{:016x}", fnv1a_64(key.as_bytes()))
}

/// Widest key hash a stream name carries, in bits.
pub const MAX_HASH_BITS: u8 = 64;

/// The low `hash_bits` bits of `key`'s FNV-1a hash (all of them from
/// [`MAX_HASH_BITS`] up; none at 0).
#[must_use]
pub fn key_hash(key: &str, hash_bits: u8) -> u64 {
    let mask = match hash_bits {
        0 => 0,
        MAX_HASH_BITS.. => u64::MAX,
        bits => (1u64 << bits) - 1,
    };
    fnv1a_64(key.as_bytes()) & mask
}

/// The name of the stream that holds `key`'s records in `namespace` when
/// stream names keep only `hash_bits` bits of the hash (a narrow hash space
/// forces collisions in tests).
#[must_use]
pub fn stream_name_with_hash_bits(namespace: &str, key: &str, hash_bits: u8) -> String {
    format!("{namespace}:{:016x}", key_hash(key, hash_bits))
}

/// The hash widths (1..=64, bit `w` of the answer for width `w`) under
/// which `stream` is the name of `key`'s stream in `namespace`; 0 when
/// none is. A checker that does not know the width a run used can then ask
/// that one width names every stream.
#[must_use]
pub fn hash_widths_naming(namespace: &str, key: &str, stream: &str) -> u128 {
    let Some(suffix) = stream
        .strip_prefix(namespace)
        .and_then(|rest| rest.strip_prefix(':'))
    else {
        return 0;
    };
    let is_hex = suffix.len() == 16
        && suffix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let Some(value) = is_hex
        .then(|| u64::from_str_radix(suffix, 16).ok())
        .flatten()
    else {
        return 0;
    };
    (1..=MAX_HASH_BITS)
        .filter(|bits| key_hash(key, *bits) == value)
        .fold(0, |widths, bits| widths | (1u128 << bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // Vectors of the FNV reference (Fowler, Noll, Vo): "" and "a".
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_stream_name_is_the_namespace_and_sixteen_hex_digits() {
        assert_eq!(stream_name("orders", "a"), "orders:af63dc4c8601ec8c");
    }

    #[test]
    fn a_narrow_hash_space_keeps_the_low_bits_of_the_hash() {
        assert_eq!(
            stream_name_with_hash_bits("o", "a", 8),
            "o:000000000000008c"
        );
        assert_eq!(
            stream_name_with_hash_bits("o", "a", 64),
            stream_name("o", "a")
        );
    }

    #[test]
    fn the_widths_naming_a_stream_are_those_whose_hash_it_carries() {
        let full = hash_widths_naming("o", "a", &stream_name("o", "a"));
        assert_eq!(full, 1u128 << 64);
        let narrow = hash_widths_naming("o", "a", "o:000000000000000c");
        // 0x8c & mask == 0x0c for widths 4..=7 only.
        assert_eq!(narrow, (4..=7).fold(0, |w, b| w | (1u128 << b)));
        assert_eq!(hash_widths_naming("o", "a", "p:af63dc4c8601ec8c"), 0);
        assert_eq!(hash_widths_naming("o", "a", "o:AF63DC4C8601EC8C"), 0);
    }
}
