//! A bounded pool of reusable values: component instances, native engines, Redis
//! connections. A caller checks one out (an idle one, or a new one), uses it, and checks it
//! back in; beyond the idle bound a returned value is dropped. A pool may also bound how
//! many values are out at once: then a caller waits a little for one to come back before
//! making another, so that values that are dear to make are not made and dropped in bursts.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// At most `max_idle` idle values of `T`, shared by any number of threads.
pub struct IdlePool<T> {
    state: Mutex<State<T>>,
    returned: Condvar,
    max_idle: usize,
    max_out: usize,
    wait: Duration,
}

struct State<T> {
    idle: Vec<T>,
    /// Values checked out and not yet checked in or discarded.
    out: usize,
}

impl<T> IdlePool<T> {
    /// An empty pool keeping at most `max_idle` values (at least one), with no bound on the
    /// values out at once.
    pub fn new(max_idle: usize) -> Self {
        Self::bounded(max_idle, usize::MAX, Duration::ZERO)
    }

    /// A pool that also bounds the values out at once to `max_out` (at least one): past
    /// it, a checkout waits up to `wait` for a value to come back, then makes one anyway.
    pub fn bounded(max_idle: usize, max_out: usize, wait: Duration) -> Self {
        let max_idle = max_idle.max(1);
        IdlePool {
            state: Mutex::new(State {
                idle: Vec::with_capacity(max_idle),
                out: 0,
            }),
            returned: Condvar::new(),
            max_idle,
            max_out: max_out.max(1),
            wait,
        }
    }

    /// An idle value, or `make()`'s. Every value checked out must come back through
    /// [`Self::checkin`] or [`Self::discard`].
    pub fn checkout<E>(&self, make: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some(value) = state.idle.pop() {
                state.out += 1;
                return Ok(value);
            }
            let now = Instant::now();
            if state.out < self.max_out || now >= deadline {
                break;
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.out += 1;
        drop(state);
        make().inspect_err(|_| self.discard())
    }

    /// The value idle the longest, checked out; `None` when none is idle (nothing is made).
    /// Maintenance goes through the pool with it: a value checked back in goes to the other
    /// end, so a pass over `len()` values visits each once.
    pub fn checkout_oldest(&self) -> Option<T> {
        let mut state = self.lock();
        if state.idle.is_empty() {
            return None;
        }
        state.out += 1;
        Some(state.idle.remove(0))
    }

    /// Gives a checked-out value back; beyond `max_idle` it is dropped.
    pub fn checkin(&self, value: T) {
        let mut state = self.lock();
        state.out = state.out.saturating_sub(1);
        let kept = state.idle.len() < self.max_idle;
        if kept {
            state.idle.push(value);
        }
        drop(state);
        self.returned.notify_one();
    }

    /// Adds a value that was never checked out (made ahead of use); false, and the value is
    /// dropped, when the pool already holds `max_idle`.
    pub fn add(&self, value: T) -> bool {
        let mut state = self.lock();
        let kept = state.idle.len() < self.max_idle;
        if kept {
            state.idle.push(value);
        }
        drop(state);
        self.returned.notify_one();
        kept
    }

    /// A checked-out value was dropped (it broke, or is not worth keeping).
    pub fn discard(&self) {
        let mut state = self.lock();
        state.out = state.out.saturating_sub(1);
        drop(state);
        self.returned.notify_one();
    }

    /// Values the pool lost since it was full: `max_idle` less those idle and those out
    /// (a value out is coming back). Discarded values count until a new one is added.
    pub fn missing(&self) -> usize {
        let state = self.lock();
        self.max_idle.saturating_sub(state.idle.len() + state.out)
    }

    /// Number of idle values.
    pub fn len(&self) -> usize {
        self.lock().idle.len()
    }

    /// Whether no value is idle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on idle values.
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while the lock is held cannot leave the state inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::IdlePool;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn make(n: u32) -> impl FnOnce() -> Result<u32, ()> {
        move || Ok(n)
    }

    #[test]
    fn counts_the_values_it_lost() {
        let pool = IdlePool::new(3);
        for n in 0..3 {
            assert!(pool.add(n));
        }
        assert_eq!(pool.missing(), 0);
        let a = pool.checkout(make(9)).unwrap();
        let _b = pool.checkout(make(9)).unwrap();
        assert_eq!(pool.missing(), 0, "values out are coming back");
        pool.checkin(a);
        pool.discard();
        assert_eq!(pool.missing(), 1, "the discarded one is missing");
        assert!(pool.add(7));
        assert_eq!(pool.missing(), 0);
    }

    #[test]
    fn keeps_at_most_max_idle() {
        let pool = IdlePool::new(2);
        let values: Vec<u32> = (0..3).map(|n| pool.checkout(make(n)).unwrap()).collect();
        for v in values {
            pool.checkin(v);
        }
        assert_eq!(pool.len(), 2, "the third is dropped");
        assert!(
            pool.checkout(make(9)).unwrap() < 3,
            "an idle value comes first"
        );
        pool.discard();
        assert!(pool.checkout(make(9)).unwrap() < 3);
        pool.discard();
        assert!(pool.is_empty());
        assert_eq!(IdlePool::<u8>::new(0).max_idle(), 1);
        assert_eq!(pool.checkout(|| Err::<u32, &str>("no")), Err("no"));
        assert_eq!(pool.lock().out, 0, "a failed make is not out");
        assert!(
            pool.add(7) && pool.add(8) && !pool.add(9),
            "add fills up to max_idle"
        );
        assert_eq!(pool.lock().out, 0);
    }

    #[test]
    fn a_bounded_pool_waits_for_a_value_instead_of_making_one() {
        let pool = Arc::new(IdlePool::bounded(1, 1, Duration::from_secs(5)));
        let made = Arc::new(AtomicUsize::new(0));
        let first = pool.checkout(make(1)).unwrap();
        let waiter = {
            let (pool, made) = (pool.clone(), made.clone());
            std::thread::spawn(move || {
                pool.checkout(|| {
                    made.fetch_add(1, Ordering::SeqCst);
                    Ok::<u32, ()>(2)
                })
                .unwrap()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        pool.checkin(first);
        assert_eq!(
            waiter.join().unwrap(),
            1,
            "the waiter got the returned value"
        );
        assert_eq!(made.load(Ordering::SeqCst), 0);

        // Past the wait, it makes one anyway.
        let pool = IdlePool::bounded(1, 1, Duration::from_millis(20));
        let _held = pool.checkout(make(1)).unwrap();
        let started = Instant::now();
        assert_eq!(pool.checkout(make(2)).unwrap(), 2);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
