//! The bounded queue in front of each output. The aggregator never waits on
//! it: a push takes a lock for a moment and returns. A newer state of an
//! incident replaces the queued one in place (counts are cumulative, so
//! nothing is lost by it); a new incident beyond the bound drops the oldest
//! queued, which is counted and said in the next alert the output delivers.

use std::{collections::VecDeque, sync::Mutex};

use tokio::sync::Notify;

use super::alert::Alert;

/// One output's waiting alerts.
#[derive(Debug)]
pub struct Queue {
    capacity: usize,
    inner: Mutex<Inner>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    alerts: VecDeque<Alert>,
    /// Dropped since the destination last accepted a delivery.
    unreported: u64,
    /// Dropped since the start.
    dropped: u64,
}

impl Queue {
    /// A queue of at most `capacity` incidents (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `alert`; false when an older incident had to be dropped.
    pub fn push(&self, alert: Alert) -> bool {
        let kept = {
            let mut inner = self.lock();
            inner.put(alert, self.capacity, false)
        };
        self.wake.notify_one();
        kept
    }

    /// Up to `max` alerts from the front, and the drops they must report.
    pub fn take(&self, max: usize) -> (Vec<Alert>, u64) {
        let mut inner = self.lock();
        let n = inner.alerts.len().min(max.max(1));
        let batch = inner.alerts.drain(..n).collect();
        (batch, inner.unreported)
    }

    /// Puts back a batch that could not be delivered, in front, unless a
    /// newer state of the same incident was queued meanwhile.
    pub fn give_back(&self, batch: Vec<Alert>) {
        let mut inner = self.lock();
        for alert in batch.into_iter().rev() {
            if !inner.alerts.iter().any(|a| a.incident == alert.incident) {
                inner.put(alert, self.capacity, true);
            }
        }
    }

    /// The destination accepted a delivery that reported `reported` drops.
    pub fn delivered(&self, reported: u64) {
        let mut inner = self.lock();
        inner.unreported = inner.unreported.saturating_sub(reported);
    }

    /// Alerts the destination refused: dropped, and reported like the rest.
    pub fn refused(&self, n: u64) {
        let mut inner = self.lock();
        inner.unreported += n;
        inner.dropped += n;
    }

    /// Alerts waiting now.
    pub fn len(&self) -> usize {
        self.lock().alerts.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Alerts dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Waits until something is pushed.
    pub async fn pushed(&self) {
        self.wake.notified().await;
    }
}

impl Inner {
    fn put(&mut self, alert: Alert, capacity: usize, in_front: bool) -> bool {
        if let Some(queued) = self
            .alerts
            .iter_mut()
            .find(|a| a.incident == alert.incident)
        {
            *queued = alert;
            return true;
        }
        let mut kept = true;
        if self.alerts.len() >= capacity {
            // The oldest state is the least useful to on-call.
            if in_front {
                self.unreported += 1;
                self.dropped += 1;
                return false;
            }
            self.alerts.pop_front();
            self.unreported += 1;
            self.dropped += 1;
            kept = false;
        }
        if in_front {
            self.alerts.push_front(alert);
        } else {
            self.alerts.push_back(alert);
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::incident::tests::alert;

    #[test]
    fn a_newer_state_replaces_the_queued_one() {
        let queue = Queue::new(2);
        let mut first = alert("a");
        first.count = 1;
        assert!(queue.push(first));
        let mut newer = alert("a");
        newer.count = 7;
        assert!(queue.push(newer));
        assert_eq!(queue.len(), 1);
        let (batch, dropped) = queue.take(10);
        assert_eq!(batch[0].count, 7);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn beyond_the_bound_the_oldest_is_dropped_and_reported_until_delivered() {
        let queue = Queue::new(2);
        for incident in ["a", "b", "c", "d"] {
            queue.push(alert(incident));
        }
        assert_eq!(queue.dropped(), 2);
        let (batch, dropped) = queue.take(10);
        let names: Vec<_> = batch.iter().map(|a| a.incident.as_str()).collect();
        assert_eq!(names, ["c", "d"]);
        assert_eq!(dropped, 2);
        // Failed: back in front, the report still pending.
        queue.give_back(batch);
        let (batch, dropped) = queue.take(1);
        assert_eq!(batch[0].incident, "c");
        assert_eq!(dropped, 2);
        queue.delivered(dropped);
        let (_, dropped) = queue.take(1);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn a_failed_batch_does_not_overwrite_newer_states() {
        let queue = Queue::new(4);
        queue.push(alert("a"));
        let (batch, _) = queue.take(1);
        let mut newer = alert("a");
        newer.count = 9;
        queue.push(newer);
        queue.give_back(batch);
        let (batch, _) = queue.take(10);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].count, 9);
    }

    #[test]
    fn refused_alerts_count_as_dropped() {
        let queue = Queue::new(4);
        queue.refused(3);
        assert_eq!(queue.dropped(), 3);
        assert_eq!(queue.take(1).1, 3);
    }
}
