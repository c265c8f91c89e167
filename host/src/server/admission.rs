//! The bound on concurrent evaluations. At most `server.max_concurrent_evaluations` run at
//! once; up to `server.max_queued_evaluations` more wait, in arrival order, at most
//! `server.queue_timeout_ms` each; anything beyond is refused at once with
//! [`EvalError::Overloaded`] (503 with `Retry-After`, gRPC `UNAVAILABLE`). Evaluations are
//! CPU-bound: past a few per core, more of them at once only make every one slower, so under
//! overload the server sheds the excess and keeps the latency of what it admits. Cache hits
//! are not evaluations and are never held here.

use crate::config::ServerConfig;
use crate::evaluator::EvalError;
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The seconds a refused client is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The server's evaluation slots and their queue.
pub struct Admission {
    slots: Semaphore,
    limit: usize,
    max_queued: usize,
    queued: AtomicUsize,
    queue_timeout: Duration,
}

/// One admitted evaluation; its slot is free again when this drops.
pub struct Admitted<'a>(#[allow(dead_code)] SemaphorePermit<'a>);

impl Admission {
    /// The bound `config` gives (defaults from the machine's cores).
    pub fn new(config: &ServerConfig) -> Self {
        let limit = config.concurrent_evaluations();
        Admission {
            slots: Semaphore::new(limit),
            limit,
            max_queued: config.queued_evaluations(),
            queued: AtomicUsize::new(0),
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
        }
    }

    /// A slot for one evaluation: at once when one is free, else after waiting in the queue;
    /// [`EvalError::Overloaded`] when the queue is full or the wait runs out (counted in
    /// `evaluations_shed_total`). May block: see [`Admission::wait`]. (The server calls
    /// the two steps itself, so a refusal never blocks.)
    #[cfg(test)]
    pub fn admit(&self, metrics: &Metrics) -> Result<Admitted<'_>, EvalError> {
        match self.try_admit(metrics)? {
            Some(admitted) => Ok(admitted),
            None => self.wait(metrics),
        }
    }

    /// Without blocking: a free slot (`Some`), a refusal when the queue is full, or `None`
    /// when the caller would have to wait in the queue ([`Admission::wait`]). A refused
    /// request never leaves its async worker, so shedding costs little.
    pub fn try_admit(&self, metrics: &Metrics) -> Result<Option<Admitted<'_>>, EvalError> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(Some(Admitted(permit)));
        }
        if self.queued.load(Ordering::Acquire) >= self.max_queued {
            return Err(self.refused(metrics, "the queue is full"));
        }
        Ok(None)
    }

    /// Waits in the queue for a slot, at most `queue_timeout_ms`. Blocks the calling thread:
    /// call it where blocking is allowed (inside [`tokio::task::block_in_place`]).
    pub fn wait(&self, metrics: &Metrics) -> Result<Admitted<'_>, EvalError> {
        let ahead = self.queued.fetch_add(1, Ordering::AcqRel);
        let _leave = Leave(&self.queued);
        if ahead >= self.max_queued {
            return Err(self.refused(metrics, "the queue is full"));
        }
        let wait = tokio::time::timeout(self.queue_timeout, self.slots.acquire());
        match tokio::runtime::Handle::current().block_on(wait) {
            Ok(Ok(permit)) => Ok(Admitted(permit)),
            // The semaphore is never closed; a timeout is the only other outcome.
            _ => Err(self.refused(metrics, "the wait in the queue ran out")),
        }
    }

    fn refused(&self, metrics: &Metrics, reason: &'static str) -> EvalError {
        metrics.evaluation_shed();
        EvalError::Overloaded {
            limit: self.limit,
            reason,
        }
    }
}

/// Leaves the queue when dropped.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(limit: usize, queued: usize, timeout_ms: u64) -> Admission {
        Admission::new(&ServerConfig {
            max_concurrent_evaluations: Some(limit),
            max_queued_evaluations: Some(queued),
            queue_timeout_ms: timeout_ms,
            ..ServerConfig::default()
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_slots_and_the_queue_is_refused_at_once() {
        let a = admission(1, 0, 1000);
        let metrics = Metrics::new();
        let held = tokio::task::block_in_place(|| a.admit(&metrics)).unwrap();
        let started = std::time::Instant::now();
        let refused = tokio::task::block_in_place(|| a.admit(&metrics));
        assert!(matches!(
            refused,
            Err(EvalError::Overloaded {
                limit: 1,
                reason: "the queue is full"
            })
        ));
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(
            metrics
                .encode(None, &Default::default())
                .contains("evaluations_shed_total 1")
        );
        drop(held);
        assert!(tokio::task::block_in_place(|| a.admit(&metrics)).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queued_evaluation_gets_the_slot_freed_before_its_wait_runs_out() {
        let a = std::sync::Arc::new(admission(1, 1, 5000));
        let metrics = std::sync::Arc::new(Metrics::new());
        let held = tokio::task::block_in_place(|| a.admit(&metrics)).unwrap();
        let (a2, m2) = (a.clone(), metrics.clone());
        let waiter =
            tokio::spawn(
                async move { tokio::task::block_in_place(|| a2.admit(&m2).map(drop).is_ok()) },
            );
        while a.queued.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(waiter.await.unwrap(), "the queued evaluation was admitted");
        assert_eq!(a.queued.load(Ordering::Acquire), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queued_evaluation_is_refused_when_its_wait_runs_out() {
        let a = admission(1, 4, 50);
        let metrics = Metrics::new();
        let _held = tokio::task::block_in_place(|| a.admit(&metrics)).unwrap();
        let started = std::time::Instant::now();
        let refused = tokio::task::block_in_place(|| a.admit(&metrics));
        assert!(matches!(
            refused,
            Err(EvalError::Overloaded {
                reason: "the wait in the queue ran out",
                ..
            })
        ));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(a.queued.load(Ordering::Acquire), 0);
    }
}
