//! At most so many actions per container in a window, so that a rule that
//! matches in a loop cannot turn the agent into a denial of service.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// Containers whose windows are remembered; beyond this the stalest window
/// is forgotten (it can only have allowed its actions already).
const MAX_TRACKED: usize = 4096;

/// Fixed windows per container, keyed by cgroup id.
#[derive(Debug)]
pub struct RateLimiter {
    max: u32,
    window: Duration,
    windows: HashMap<u64, (Instant, u32)>,
}

impl RateLimiter {
    /// `max` actions per `window` per container.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            windows: HashMap::new(),
        }
    }

    /// Takes one action's allowance for container `cgroup_id`; false when
    /// its window is used up.
    pub fn allow(&mut self, cgroup_id: u64, now: Instant) -> bool {
        if !self.windows.contains_key(&cgroup_id) && self.windows.len() >= MAX_TRACKED {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if self.windows.len() >= MAX_TRACKED
                && let Some(stalest) = self
                    .windows
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(id, _)| *id)
            {
                self.windows.remove(&stalest);
            }
        }
        let (start, used) = self.windows.entry(cgroup_id).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *used = 0;
        }
        if *used >= self.max {
            return false;
        }
        *used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_container_gets_its_own_allowance_per_window() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.allow(1, start));
        assert!(limiter.allow(1, start));
        assert!(!limiter.allow(1, start + Duration::from_secs(1)));
        assert!(limiter.allow(2, start), "another container is not limited");
        assert!(
            limiter.allow(1, start + Duration::from_secs(61)),
            "a new window"
        );
    }

    #[test]
    fn the_tracked_containers_are_bounded() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(1, Duration::from_secs(60));
        for id in 0..(MAX_TRACKED as u64 + 10) {
            assert!(limiter.allow(id, start));
        }
        assert!(limiter.windows.len() <= MAX_TRACKED);
    }
}
