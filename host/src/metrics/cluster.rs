//! The metrics of a cluster: its Redis connection, rollout changes it applied, and the
//! shared decision cache.

use super::Metrics;
use std::time::Duration;

impl Metrics {
    /// Records a shared-cache lookup (`result` = hit | miss | error | timeout | unavailable).
    pub fn shared_cache_get(&self, elapsed: Duration, result: &str) {
        if result != "unavailable" {
            self.shared_cache_get.observe(elapsed.as_secs_f64());
        }
        self.shared_cache_op("get", result);
    }

    /// Records a shared-cache write (`result` = ok | error | timeout | dropped).
    pub fn shared_cache_set(&self, result: &str) {
        self.shared_cache_op("set", result);
    }

    fn shared_cache_op(&self, operation: &str, result: &str) {
        self.cache_ops
            .get_or_create(&vec![
                ("implementation", "redis".to_string()),
                ("operation", operation.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    /// Sets whether the cluster's Redis is reachable.
    pub fn cluster_connected(&self, connected: bool) {
        self.cluster_connected.set(i64::from(connected));
    }

    /// Records a rollout change applied from the cluster.
    pub fn cluster_rollout_applied(&self, source: &str) {
        self.cluster_updates
            .get_or_create(&vec![("source", source.to_string())])
            .inc();
    }

    /// Records data writes applied from the cluster.
    pub fn cluster_data_applied(&self, writes: u64) {
        self.cluster_data_writes.inc_by(writes);
    }
}
