//! Which stream holds a key's records (`docs/spec.md`, "Streams").
//!
//! Written from the specification: FNV-1a 64-bit over the key's UTF-8 bytes
//! (offset basis 0xcbf29ce484222325, prime 0x100000001b3), as 16 lowercase
//! hex digits after the namespace and a colon; a test configuration may keep
//! only the hash's low bits. A namespace configured with a secret names its
//! streams by SipHash-2-4 with a 128-bit output instead, as `sip24-` and 32
//! hex digits; SipHash is implemented here from its definition (Aumasson and
//! Bernstein, "SipHash: a fast short-input PRF", with the 128-bit variant of
//! its reference code) and checked against the published vectors, never by
//! the engine's naming or the crate it uses.

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

/// What a keyed stream name carries between the colon and the hash.
pub const KEYED_TAG: &str = "sip24-";

/// SipHash's four state words, after the initialization with the key.
struct SipState([u64; 4]);

impl SipState {
    fn new(secret: &[u8; 16]) -> SipState {
        let half = |range: std::ops::Range<usize>| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&secret[range]);
            u64::from_le_bytes(word)
        };
        let (k0, k1) = (half(0..8), half(8..16));
        // "somepseudorandomlygeneratedbytes", the algorithm's constants.
        SipState([
            k0 ^ 0x736f_6d65_7073_6575,
            k1 ^ 0x646f_7261_6e64_6f6d,
            k0 ^ 0x6c79_6765_6e65_7261,
            k1 ^ 0x7465_6462_7974_6573,
        ])
    }

    /// One SipRound: three additions, six rotations, four xors.
    fn round(&mut self) {
        let [v0, v1, v2, v3] = &mut self.0;
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    }

    /// Two rounds per message word (the "2" of SipHash-2-4).
    fn compress(&mut self, word: u64) {
        self.0[3] ^= word;
        self.round();
        self.round();
        self.0[0] ^= word;
    }

    /// Four rounds (the "4"), then the xor of the state words.
    fn finalize(&mut self) -> u64 {
        for _ in 0..4 {
            self.round();
        }
        self.0.iter().fold(0, |sum, word| sum ^ word)
    }
}

/// SipHash-2-4 of `message` under `secret`, with a 64-bit output (`wide`
/// false, 8 bytes) or a 128-bit one (`wide` true, 16 bytes), each output
/// word little-endian.
#[must_use]
pub fn siphash24(secret: &[u8; 16], message: &[u8], wide: bool) -> Vec<u8> {
    let mut state = SipState::new(secret);
    if wide {
        state.0[1] ^= 0xee;
    }
    let mut words = message.chunks_exact(8);
    for chunk in words.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        state.compress(u64::from_le_bytes(word));
    }
    // The last word: the remaining bytes, and the message length's low
    // byte in the top byte.
    let mut last = [0u8; 8];
    let rest = words.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = message.len().to_le_bytes()[0];
    state.compress(u64::from_le_bytes(last));
    state.0[2] ^= if wide { 0xee } else { 0xff };
    let mut out = state.finalize().to_le_bytes().to_vec();
    if wide {
        state.0[1] ^= 0xdd;
        out.extend_from_slice(&state.finalize().to_le_bytes());
    }
    out
}

/// The name of the stream that holds `key`'s records in a `namespace`
/// whose streams are named by SipHash-2-4-128 under `secret`.
#[must_use]
pub fn keyed_stream_name(namespace: &str, key: &str, secret: &[u8; 16]) -> String {
    let hex: String = siphash24(secret, key.as_bytes(), true)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{namespace}:{KEYED_TAG}{hex}")
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

    /// The reference code's key, 00 01 .. 0f, and its messages: the first
    /// `len` bytes of 00 01 02 ...
    const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    fn reference_message(len: u8) -> Vec<u8> {
        (0..len).collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn siphash24_matches_the_published_64_bit_vectors() {
        // The paper's worked example (appendix A): 15 bytes, as a u64.
        let out = siphash24(&KEY, &reference_message(15), false);
        assert_eq!(
            u64::from_le_bytes(out.try_into().unwrap()),
            0xa129_ca61_49be_45e5
        );
        // The reference code's first vectors (vectors.h), as bytes.
        assert_eq!(hex(&siphash24(&KEY, &[], false)), "310e0edd47db6f72");
        assert_eq!(
            hex(&siphash24(&KEY, &reference_message(1), false)),
            "fd67dc93c539f874"
        );
    }

    #[test]
    fn siphash24_matches_the_published_128_bit_vectors() {
        assert_eq!(
            hex(&siphash24(&KEY, &[], true)),
            "a3817f04ba25a8e66df67214c7550293"
        );
        assert_eq!(
            hex(&siphash24(&KEY, &reference_message(1), true)),
            "da87c1d86b99af44347659119b22fc45"
        );
    }

    #[test]
    fn a_keyed_stream_name_is_tagged_and_has_thirty_two_hex_digits() {
        let name = keyed_stream_name("orders", "a", &KEY);
        let hash = name.strip_prefix("orders:sip24-").unwrap();
        assert_eq!(hash, hex(&siphash24(&KEY, b"a", true)));
        assert_eq!(hash.len(), 32);
        assert_ne!(name, keyed_stream_name("orders", "a", &[7; 16]));
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
