//! The bytes on the wire between a live run and its haematite server
//! (`server.rs`): each request and response as one length-prefixed frame.

use atmostonce::{DurabilityError, ScannedEntry, StoredEntry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest frame either side accepts. A scan of a long live run's
/// streams (every record of every key) is the largest message: a
/// minute's run is a few MiB; 256 MiB bounds what a corrupt length can
/// make either side allocate.
pub(crate) const MAX_FRAME_BYTES: usize = 256 << 20;

/// A store call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Append {
        stream: String,
        payload: Vec<u8>,
        expected_seq: u64,
    },
    Read {
        stream: String,
        offset: u64,
        limit: u64,
    },
    Scan {
        prefix: String,
    },
    Flush,
}

/// A store call's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    Appended(u64),
    Entries(Vec<StoredEntry>),
    Scanned(Vec<ScannedEntry>),
    Flushed,
    Conflict { expected: u64, actual: u64 },
    Failed(String),
}

impl Response {
    /// The answer to a call that failed with `error`.
    pub(crate) fn from_error(error: &DurabilityError) -> Response {
        match error {
            DurabilityError::SequenceConflict { expected, actual } => Response::Conflict {
                expected: *expected,
                actual: *actual,
            },
            other => Response::Failed(other.to_string()),
        }
    }
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_entry(out: &mut Vec<u8>, entry: &StoredEntry) {
    put_bytes(out, &entry.payload);
    put_u64(out, entry.sequence);
    put_u64(out, entry.timestamp);
}

/// Reads fields off a frame; every read checks the frame's length.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn u64(&mut self) -> Option<u64> {
        let bytes = self.0.get(..8)?;
        self.0 = &self.0[8..];
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = usize::try_from(self.u64()?).ok()?;
        let bytes = self.0.get(..len)?.to_vec();
        self.0 = &self.0[len..];
        Some(bytes)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }

    fn entry(&mut self) -> Option<StoredEntry> {
        Some(StoredEntry {
            payload: self.bytes()?,
            sequence: self.u64()?,
            timestamp: self.u64()?,
        })
    }

    /// A count of items each at least `min_item_bytes` long: bounded
    /// by what the frame can hold, so a bad count allocates nothing.
    fn count(&mut self, min_item_bytes: usize) -> Option<usize> {
        let count = usize::try_from(self.u64()?).ok()?;
        (count <= self.0.len() / min_item_bytes).then_some(count)
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

/// An entry is at least its payload's length, sequence and timestamp.
const MIN_ENTRY_BYTES: usize = 24;

impl Request {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Append {
                stream,
                payload,
                expected_seq,
            } => {
                out.push(1);
                put_bytes(&mut out, stream.as_bytes());
                put_bytes(&mut out, payload);
                put_u64(&mut out, *expected_seq);
            }
            Request::Read {
                stream,
                offset,
                limit,
            } => {
                out.push(2);
                put_bytes(&mut out, stream.as_bytes());
                put_u64(&mut out, *offset);
                put_u64(&mut out, *limit);
            }
            Request::Scan { prefix } => {
                out.push(3);
                put_bytes(&mut out, prefix.as_bytes());
            }
            Request::Flush => out.push(4),
        }
        out
    }

    pub(crate) fn decode(frame: &[u8]) -> Option<Request> {
        let mut reader = Reader(frame);
        let request = match reader.u8()? {
            1 => Request::Append {
                stream: reader.string()?,
                payload: reader.bytes()?,
                expected_seq: reader.u64()?,
            },
            2 => Request::Read {
                stream: reader.string()?,
                offset: reader.u64()?,
                limit: reader.u64()?,
            },
            3 => Request::Scan {
                prefix: reader.string()?,
            },
            4 => Request::Flush,
            _ => return None,
        };
        reader.end()?;
        Some(request)
    }
}

impl Response {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Appended(sequence) => {
                out.push(1);
                put_u64(&mut out, *sequence);
            }
            Response::Entries(entries) => {
                out.push(2);
                put_u64(&mut out, entries.len() as u64);
                entries.iter().for_each(|entry| put_entry(&mut out, entry));
            }
            Response::Scanned(entries) => {
                out.push(3);
                put_u64(&mut out, entries.len() as u64);
                for scanned in entries {
                    put_bytes(&mut out, scanned.stream.as_bytes());
                    put_entry(&mut out, &scanned.entry);
                }
            }
            Response::Flushed => out.push(4),
            Response::Conflict { expected, actual } => {
                out.push(5);
                put_u64(&mut out, *expected);
                put_u64(&mut out, *actual);
            }
            Response::Failed(message) => {
                out.push(6);
                put_bytes(&mut out, message.as_bytes());
            }
        }
        out
    }

    pub(crate) fn decode(frame: &[u8]) -> Option<Response> {
        let mut reader = Reader(frame);
        let response = match reader.u8()? {
            1 => Response::Appended(reader.u64()?),
            2 => {
                let count = reader.count(MIN_ENTRY_BYTES)?;
                let entries = (0..count).map(|_| reader.entry()).collect::<Option<_>>()?;
                Response::Entries(entries)
            }
            3 => {
                let count = reader.count(MIN_ENTRY_BYTES + 8)?;
                let entries = (0..count)
                    .map(|_| {
                        Some(ScannedEntry {
                            stream: reader.string()?,
                            entry: reader.entry()?,
                        })
                    })
                    .collect::<Option<_>>()?;
                Response::Scanned(entries)
            }
            4 => Response::Flushed,
            5 => Response::Conflict {
                expected: reader.u64()?,
                actual: reader.u64()?,
            },
            6 => Response::Failed(reader.string()?),
            _ => return None,
        };
        reader.end()?;
        Some(response)
    }
}

/// Writes one frame: a 4-byte big-endian length, then `body`.
pub(crate) async fn write_frame(socket: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| std::io::Error::other("frame over the size limit"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    socket.write_all(&frame).await
}

/// Reads one frame written by [`write_frame`].
pub(crate) async fn read_frame(socket: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    socket.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::other("frame over the size limit"));
    }
    let mut body = vec![0u8; len];
    socket.read_exact(&mut body).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::{Request, Response};
    use atmostonce::{ScannedEntry, StoredEntry};

    #[test]
    fn every_request_and_response_survives_the_wire() {
        let entry = StoredEntry {
            payload: b"LDE1...".to_vec(),
            sequence: 7,
            timestamp: 1_700_000_000_000,
        };
        for request in [
            Request::Append {
                stream: "sim:0a".into(),
                payload: vec![0, 1, 255],
                expected_seq: 3,
            },
            Request::Read {
                stream: "sim:0a".into(),
                offset: 2,
                limit: 256,
            },
            Request::Scan {
                prefix: "sim:".into(),
            },
            Request::Flush,
        ] {
            assert_eq!(Request::decode(&request.encode()), Some(request));
        }
        for response in [
            Response::Appended(9),
            Response::Entries(vec![entry.clone(), entry.clone()]),
            Response::Scanned(vec![ScannedEntry {
                stream: "sim:0b".into(),
                entry,
            }]),
            Response::Flushed,
            Response::Conflict {
                expected: 4,
                actual: 5,
            },
            Response::Failed("disk full".into()),
        ] {
            assert_eq!(Response::decode(&response.encode()), Some(response));
        }
    }

    #[test]
    fn truncated_trailing_or_oversized_frames_decode_to_nothing() {
        let frame = Response::Entries(vec![StoredEntry {
            payload: vec![1; 40],
            sequence: 1,
            timestamp: 2,
        }])
        .encode();
        for cut in 0..frame.len() {
            assert_eq!(Response::decode(&frame[..cut]), None, "cut at {cut}");
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert_eq!(Response::decode(&longer), None);
        // A count far beyond what the frame holds allocates nothing.
        let mut huge = vec![2];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(Response::decode(&huge), None);
        assert_eq!(Request::decode(&[9]), None);
    }
}
