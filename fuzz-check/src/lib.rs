//! The checks behind atmostonce's fuzz targets, in one place for both of
//! their users:
//!
//! - the cargo-fuzz package `fuzz/` (its targets are one-line calls into
//!   this crate), which needs libFuzzer and is built outside the workspace;
//! - the ordinary test suite (`cargo test --workspace`, stable, no
//!   cargo-fuzz), which replays every committed corpus file through the very
//!   same functions and runs the proptest properties.
//!
//! It is a workspace crate rather than a feature of the engine so that the
//! engine keeps no fuzz-only dependency (`arbitrary`) or public surface, and
//! stays `#![forbid(unsafe_code)]`: the allocation-counting allocator
//! ([`alloc`]) needs `unsafe impl GlobalAlloc` and lives here.
//!
//! | fuzz target | body |
//! |---|---|
//! | `record_decode` | [`codec::check_decode`] |
//! | `record_roundtrip` | [`codec::check_roundtrip`] of an [`codec::ArbRecord`] |
//! | `cache_ops` | [`program::check_program`] (seed API), judged by [`history::verify`] |
//! | `cache_ops_fenced` | [`fenced::check_fenced_program`] (fenced API), judged by [`fenced::verify_fenced`] |
//!
//! ```
//! use atmostonce_fuzz_check::codec::check_decode;
//!
//! // The worked example of docs/record-format.md decodes and re-encodes to the same bytes.
//! let bytes = [b'L', b'D', b'E', b'1', 0, 0, 0, 0, 0, 0, 0, 1, b'k', 0, 0, 0, 0, 0, 0, 0, 0, 42];
//! assert!(check_decode(&bytes).is_ok());
//! // A receipt marker of 2 is rejected, and for the reason it names.
//! let mut bad = bytes;
//! bad[13] = 2;
//! assert!(check_decode(&bad).is_err());
//! ```

#![warn(missing_docs)]

pub mod alloc;
pub mod codec;
pub mod fenced;
pub mod history;
pub mod program;
