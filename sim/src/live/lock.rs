//! The one way live mode locks a mutex.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex of live mode. Its holders only make plain assignments,
/// which cannot panic half way, so a poisoned lock (a panic elsewhere on
/// that thread) still guards consistent state.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
