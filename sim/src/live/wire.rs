//! The bytes on the wire between a live run and its haematite server
//! (`server.rs`): the engine's own store vocabulary, a
//! [`StoreRequest`](atmostonce::core::StoreRequest) one way and a
//! [`Response`] the other, each as one length-prefixed frame of CBOR
//! (`ciborium`, through the engine's `serde` feature).

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest frame either side accepts. A scan of a long live run's
/// streams (every record of every key) is the largest message: a
/// minute's run is a few MiB; 256 MiB bounds what a corrupt length can
/// make either side allocate.
pub(crate) const MAX_FRAME_BYTES: usize = 256 << 20;

/// Bytes of a frame's length prefix (big-endian).
const LENGTH_PREFIX_BYTES: usize = 4;

/// The server's answer to one request frame: the store's reply, or why the
/// server could not serve the frame at all (it did not decode).
pub(crate) type Response = Result<atmostonce::core::StoreReply, String>;

/// Encodes one message as a frame body.
pub(crate) fn encode(message: &impl Serialize) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    ciborium::into_writer(message, &mut body)
        .map_err(|error| std::io::Error::other(format!("a message did not encode: {error}")))?;
    Ok(body)
}

/// Decodes a frame body holding exactly one message of type `T`: a
/// truncated or malformed body, or one with bytes after the message, is an
/// error that says so.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut rest = body;
    let message = ciborium::from_reader(&mut rest).map_err(|error| {
        format!(
            "a {}-byte frame is not a valid {}: {error}",
            body.len(),
            std::any::type_name::<T>()
        )
    })?;
    if !rest.is_empty() {
        return Err(format!(
            "a {}-byte frame has {} bytes after its message",
            body.len(),
            rest.len()
        ));
    }
    Ok(message)
}

/// Writes one frame: a 4-byte big-endian length, then `body`.
pub(crate) async fn write_frame(socket: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "a {}-byte frame is over the {MAX_FRAME_BYTES}-byte limit",
                body.len()
            ))
        })?;
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    socket.write_all(&frame).await
}

/// Reads one frame written by [`write_frame`].
pub(crate) async fn read_frame(socket: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; LENGTH_PREFIX_BYTES];
    socket.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!(
            "a frame announces {len} bytes, over the {MAX_FRAME_BYTES}-byte limit"
        )));
    }
    let mut body = vec![0u8; len];
    socket.read_exact(&mut body).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::{Response, decode, encode};
    use atmostonce::core::{StoreReply, StoreRequest};
    use atmostonce::{DurabilityError, ScannedEntry, ScannedHead, StoredEntry, StreamHead};

    fn entry() -> StoredEntry {
        StoredEntry {
            payload: b"LDE1...".to_vec(),
            sequence: 7,
            timestamp: 1_700_000_000_000,
        }
    }

    #[test]
    fn every_request_and_response_survives_the_wire() {
        for request in [
            StoreRequest::Append {
                stream: "sim:0a".into(),
                payload: vec![0, 1, 255],
                expected_seq: 3,
            },
            StoreRequest::Read {
                stream: "sim:0a".into(),
                offset: 2,
                limit: 256,
            },
            StoreRequest::Scan {
                prefix: "sim:".into(),
            },
            StoreRequest::Flush,
            StoreRequest::ReadHead {
                stream: "sim:0a".into(),
            },
            StoreRequest::ScanHeads {
                prefix: "sim:".into(),
                after: Some("sim:0a".into()),
                limit: 64,
            },
            StoreRequest::Compact {
                stream: "sim:0a".into(),
                below_seq: 6,
            },
        ] {
            let body = encode(&request).unwrap();
            assert_eq!(decode::<StoreRequest>(&body), Ok(request));
        }
        for response in [
            Ok(StoreReply::Append(Ok(9))),
            Ok(StoreReply::Append(Err(DurabilityError::SequenceConflict {
                expected: 4,
                actual: 5,
            }))),
            Ok(StoreReply::Read(Ok(vec![entry(), entry()]))),
            Ok(StoreReply::Scan(Ok(vec![ScannedEntry {
                stream: "sim:0b".into(),
                entry: entry(),
            }]))),
            Ok(StoreReply::Flush(Err(DurabilityError::StoreError(
                "disk full".into(),
            )))),
            Ok(StoreReply::Head(Ok(StreamHead {
                last: Some(entry()),
                length: 8,
            }))),
            Ok(StoreReply::Heads(Ok(vec![ScannedHead {
                stream: "sim:0b".into(),
                last: entry(),
                length: 8,
            }]))),
            Ok(StoreReply::Compact(Ok(6))),
            Err("live-server: a frame it cannot decode".to_owned()),
        ] {
            let body = encode(&response).unwrap();
            assert_eq!(decode::<Response>(&body), Ok(response));
        }
    }

    #[test]
    fn truncated_trailing_or_oversized_frames_are_errors_that_say_so() {
        let body = encode(&Ok::<_, String>(StoreReply::Read(Ok(vec![StoredEntry {
            payload: vec![1; 40],
            sequence: 1,
            timestamp: 2,
        }]))))
        .unwrap();
        for cut in 0..body.len() {
            let error = decode::<Response>(&body[..cut]).unwrap_err();
            assert!(error.contains("not a valid"), "cut at {cut}: {error}");
        }
        let mut longer = body.clone();
        longer.push(0);
        let error = decode::<Response>(&longer).unwrap_err();
        assert!(error.contains("1 bytes after its message"), "{error}");
        // An array header announcing 2^63 items in a 9-byte frame: an error
        // at the end of the frame, not a 2^63-item allocation.
        let mut huge = vec![0x9b];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert!(decode::<Vec<StoredEntry>>(&huge).is_err());
        assert!(decode::<StoreRequest>(&[0xff, 0x00]).is_err());
    }
}
