//! The oracle: what a correct engine answers, written from `docs/spec.md`.
//!
//! Nothing here calls the engine to decide what is correct. It shares only
//! plain value types with it (receipts, decisions, errors): expiry
//! ([`expiry`]), stream naming ([`naming`]), error classes
//! ([`spec::ErrorClass`]) and the sequential specification ([`spec`]) are
//! written here once, and every checker of the project judges by them.
//! [`linear`] is the per-key linearizability search over that specification;
//! [`record`] reads and writes record bytes from `docs/record-format.md`.

pub mod expiry;
pub mod fenced;
pub mod linear;
pub mod naming;
pub mod record;
pub mod spec;

pub use spec::{ErrorClass, Judgement, SpecAnswer, SpecOp, SpecResponse, SpecState};
