//! Which stream holds a key's records (`docs/spec.md`, "Streams").
//!
//! Written from the specification: FNV-1a 64-bit over the key's UTF-8 bytes
//! (offset basis 0xcbf29ce484222325, prime 0x100000001b3), as 16 lowercase
//! hex digits after the namespace and a colon.

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
}
