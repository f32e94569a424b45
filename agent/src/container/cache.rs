//! A bounded map from cgroup id to what was learnt about it, evicting with the
//! CLOCK algorithm (second chance), an approximation of LRU that needs no list
//! to update on every hit.

use std::collections::HashMap;

/// At most `capacity` entries; a full cache evicts one that was not used since
/// the clock hand last passed it.
#[derive(Debug)]
pub(super) struct ClockCache<V> {
    slots: Vec<Slot<V>>,
    index: HashMap<u64, usize>,
    hand: usize,
    capacity: usize,
    evictions: u64,
}

#[derive(Debug)]
struct Slot<V> {
    key: u64,
    value: V,
    referenced: bool,
}

impl<V> ClockCache<V> {
    /// An empty cache of `capacity` entries (at least one).
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: Vec::new(),
            index: HashMap::new(),
            hand: 0,
            capacity,
            evictions: 0,
        }
    }

    /// The value for `key`, marked as recently used.
    pub(super) fn get(&mut self, key: u64) -> Option<&V> {
        let slot = self.slots.get_mut(*self.index.get(&key)?)?;
        slot.referenced = true;
        Some(&slot.value)
    }

    /// Whether `key` is cached, without marking it used.
    pub(super) fn contains(&self, key: u64) -> bool {
        self.index.contains_key(&key)
    }

    /// Stores `value` for `key`, evicting another entry if the cache is full.
    pub(super) fn insert(&mut self, key: u64, value: V) {
        if let Some(&at) = self.index.get(&key) {
            if let Some(slot) = self.slots.get_mut(at) {
                slot.value = value;
                slot.referenced = true;
            }
            return;
        }
        let slot = Slot {
            key,
            value,
            referenced: false,
        };
        if self.slots.len() < self.capacity {
            self.index.insert(key, self.slots.len());
            self.slots.push(slot);
            return;
        }
        // Every pass clears the bits it sees, so this ends within two turns.
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let Some(victim) = self.slots.get_mut(at) else {
                return;
            };
            if victim.referenced {
                victim.referenced = false;
                continue;
            }
            self.index.remove(&victim.key);
            *victim = slot;
            self.index.insert(key, at);
            self.evictions += 1;
            return;
        }
    }

    /// Whether an entry can be added without evicting another.
    pub(super) fn has_room(&self) -> bool {
        self.slots.len() < self.capacity
    }

    /// How many entries are cached.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The most entries it holds.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many entries were evicted to make room.
    pub(super) fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_evicts_an_entry_not_used_since_the_hand_passed() {
        let mut cache = ClockCache::new(3);
        for key in 1..=3 {
            cache.insert(key, key * 10);
        }
        assert_eq!(cache.get(1), Some(&10));
        cache.insert(4, 40);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evictions(), 1);
        assert!(cache.contains(1), "1 was used, so it had a second chance");
        assert!(!cache.contains(2), "2 was the oldest unused entry");
        assert_eq!(cache.get(4), Some(&40));
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let mut cache = ClockCache::new(100);
        for key in 0..10_000 {
            cache.insert(key, ());
            if key % 3 == 0 {
                let _ = cache.get(key / 2);
            }
        }
        assert_eq!(cache.len(), 100);
        assert_eq!(cache.evictions(), 9_900);
        assert!(cache.contains(9_999), "the newest entry is kept");
    }

    #[test]
    fn inserting_a_cached_key_replaces_its_value_without_evicting() {
        let mut cache = ClockCache::new(1);
        cache.insert(7, "old");
        cache.insert(7, "new");
        assert_eq!(cache.get(7), Some(&"new"));
        assert_eq!(cache.evictions(), 0);
    }

    #[test]
    fn a_cache_of_zero_capacity_still_holds_one_entry() {
        let mut cache = ClockCache::new(0);
        cache.insert(1, ());
        cache.insert(2, ());
        assert_eq!((cache.len(), cache.capacity()), (1, 1));
        assert!(cache.contains(2));
    }
}
