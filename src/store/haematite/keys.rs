//! Stream names as haematite keys: an order- and prefix-preserving escape.

/// Escape byte in stream keys. See [`stream_key`].
const ESCAPE: u8 = 0x01;

/// The haematite key of a stream: its UTF-8 name with bytes 0x00 and 0x01
/// escaped as `01 01` and `01 02`.
///
/// haematite stores an event at `key || 0x00 || seq`, so a key must not
/// contain 0x00 (a stream `"a\0..."` would otherwise read as events of
/// stream `"a"`), and it reserves keys that start with 0x00. The escape is a
/// prefix-free code that preserves byte order, so key order is name order
/// and `key(p)` is a prefix of `key(s)` exactly when `p` is a prefix of `s`:
/// prefix scans and their ordering carry over unchanged.
pub(super) fn stream_key(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len());
    for &byte in stream.as_bytes() {
        match byte {
            0x00 | ESCAPE => key.extend_from_slice(&[ESCAPE, byte + 1]),
            _ => key.push(byte),
        }
    }
    key
}

/// The stream name a [`stream_key`] encodes, or `None` if `key` is not one.
pub(super) fn stream_name(key: &[u8]) -> Option<String> {
    let mut name = Vec::with_capacity(key.len());
    let mut bytes = key.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            0x00 => return None,
            ESCAPE => match bytes.next() {
                Some(&escaped @ (0x01 | 0x02)) => name.push(escaped - 1),
                _ => return None,
            },
            _ => name.push(byte),
        }
    }
    String::from_utf8(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stream_keys_round_trip(name in "\\PC*|[\\x00-\\x03a]*") {
            prop_assert_eq!(stream_name(&stream_key(&name)), Some(name.clone()));
            prop_assert!(!stream_key(&name).contains(&0x00));
        }

        #[test]
        fn stream_keys_keep_name_order_and_prefixes(
            a in "[\\x00-\\x03ab]{0,6}",
            b in "[\\x00-\\x03ab]{0,6}",
        ) {
            prop_assert_eq!(stream_key(&a).cmp(&stream_key(&b)), a.cmp(&b));
            prop_assert_eq!(
                stream_key(&b).starts_with(&stream_key(&a)),
                b.starts_with(a.as_str())
            );
        }
    }

    #[test]
    fn keys_with_a_bad_escape_are_not_stream_names() {
        assert_eq!(stream_name(b"a\x01"), None);
        assert_eq!(stream_name(b"a\x01\x03"), None);
        assert_eq!(stream_name(b"a\x00"), None);
        assert_eq!(stream_name(b"\xff"), None);
    }
}
