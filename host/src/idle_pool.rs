//! A bounded pool of idle, reusable values: component instances, native engines, Redis
//! connections. A caller takes one (or makes a new one when none is idle), uses it, and
//! gives it back; beyond the bound a returned value is dropped.

use std::sync::Mutex;

/// At most `max_idle` idle values of `T`, shared by any number of threads.
pub struct IdlePool<T> {
    idle: Mutex<Vec<T>>,
    max_idle: usize,
}

impl<T> IdlePool<T> {
    /// An empty pool keeping at most `max_idle` values (at least one).
    pub fn new(max_idle: usize) -> Self {
        let max_idle = max_idle.max(1);
        IdlePool {
            idle: Mutex::new(Vec::with_capacity(max_idle)),
            max_idle,
        }
    }

    /// An idle value, if there is one.
    pub fn take(&self) -> Option<T> {
        self.lock().pop()
    }

    /// Gives a value back; returns it when the pool is full (the caller drops it).
    pub fn put(&self, value: T) -> Option<T> {
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(value);
            None
        } else {
            Some(value)
        }
    }

    /// Number of idle values.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no value is idle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound.
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while the lock is held cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::IdlePool;

    #[test]
    fn keeps_at_most_max_idle_and_hands_back_the_rest() {
        let pool = IdlePool::new(2);
        assert_eq!(pool.take(), None::<u32>);
        assert_eq!(pool.put(1), None);
        assert_eq!(pool.put(2), None);
        assert_eq!(pool.put(3), Some(3), "the pool is full");
        assert_eq!(pool.len(), 2);
        assert!(pool.take().is_some());
        assert!(pool.take().is_some());
        assert!(pool.is_empty());
        assert_eq!(IdlePool::<u8>::new(0).max_idle(), 1);
    }
}
