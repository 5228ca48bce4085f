//! [`BlockingPool`]: a few OS threads that run a synchronous store's blocking
//! calls, so that the async [`DurableStore`](super::DurableStore) methods
//! never block the executor that polls them.
//!
//! The engine depends on no async runtime, so it cannot use a runtime's
//! `spawn_blocking`. The pool hands each call to a worker thread and answers
//! through a runtime-agnostic oneshot channel: the future works under tokio,
//! under `futures::executor`, or under any other executor.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;

use parking_lot::Mutex;
use std::thread::JoinHandle;

use futures_channel::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Why a job gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobLost {
    /// The pool is shutting down and did not take the job.
    PoolStopped,
    /// The job panicked (or its worker died) before it answered; whatever it
    /// was doing may or may not have happened.
    Panicked,
}

/// A fixed set of worker threads fed from one queue.
///
/// Dropping the pool closes the queue, lets the workers finish the jobs
/// already queued, and joins them.
#[derive(Debug)]
pub(crate) struct BlockingPool {
    queue: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl BlockingPool {
    /// Starts `threads` workers (at least one) named `"{name}-{index}"`.
    pub(crate) fn new(name: &str, threads: usize) -> std::io::Result<BlockingPool> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let mut pool = BlockingPool {
            queue: Some(queue),
            workers: Vec::new(),
        };
        for index in 0..threads.max(1) {
            let jobs = Arc::clone(&jobs);
            // On a spawn failure `pool` is dropped here, which joins the
            // workers already started.
            let worker = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || work(&jobs))?;
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    /// Runs `job` on a worker; the future resolves to its result.
    pub(crate) fn run<T, F>(&self, job: F) -> impl Future<Output = Result<T, JobLost>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let queued = self.queue.as_ref().is_some_and(|queue| {
            queue
                .send(Box::new(move || {
                    // The caller may have stopped waiting; its answer is then
                    // nobody's business.
                    let _ = answer.send(job());
                }))
                .is_ok()
        });
        async move {
            if !queued {
                return Err(JobLost::PoolStopped);
            }
            answered
                .await
                .map_err(|oneshot::Canceled| JobLost::Panicked)
        }
    }
}

fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            // Only `recv` runs under this lock.
            jobs.lock().recv()
        };
        let Ok(job) = job else {
            return; // The pool was dropped: no more jobs.
        };
        // A panicking job drops its answer sender, which its caller sees as
        // `JobLost::Panicked`; the worker lives on for the next job.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        self.queue = None;
        for worker in self.workers.drain(..) {
            // A worker that panicked outside a job has nothing left to clean up.
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_on_a_worker_and_answers() {
        let pool = BlockingPool::new("test", 2).unwrap();
        let answer = futures::executor::block_on(pool.run(|| 6 * 7));
        assert_eq!(answer, Ok(42));
    }

    #[test]
    fn a_panicking_job_is_reported_and_the_pool_keeps_working() {
        let pool = BlockingPool::new("test", 1).unwrap();
        let lost = futures::executor::block_on(pool.run(|| -> u32 { panic!("boom") }));
        assert_eq!(lost, Err(JobLost::Panicked));
        assert_eq!(futures::executor::block_on(pool.run(|| 1)), Ok(1));
    }

    #[test]
    fn dropping_the_pool_finishes_queued_jobs() {
        let pool = BlockingPool::new("test", 1).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let futures: Vec<_> = (0..8)
            .map(|_| {
                let done = Arc::clone(&done);
                pool.run(move || done.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
            })
            .collect();
        drop(pool);
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 8);
        for answer in futures {
            assert!(futures::executor::block_on(answer).is_ok());
        }
    }
}
