//! A stream's queue in the hub: bounded in events, filled a batch of the
//! pipeline at a time and emptied one event at a time by the stream.
//!
//! The pipeline hands each stream the events of a batch that pass its
//! filter in one piece, so that a stream costs the pipeline one hand-off and
//! one wake per batch, not per event: with a few streams that take every
//! event, handing them over one by one took a quarter of the pipeline's time
//! in a burst. A stream that takes the whole batch shares the hub's list of
//! it instead of a list of its own, so that the pipeline writes nothing per
//! event for it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
};

use tokio::sync::mpsc;

use super::hub::{Published, Sequenced};

/// A queue holding at most `capacity` events: the hub's end and the
/// stream's.
pub(super) fn event_queue(capacity: usize) -> (EventFeed, EventQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let held = Arc::new(AtomicUsize::new(0));
    (
        EventFeed {
            tx,
            held: held.clone(),
            capacity,
        },
        EventQueue {
            rx,
            batch: Taking::default(),
            held,
        },
    )
}

/// The hub's end of a stream's queue.
#[derive(Debug)]
pub(super) struct EventFeed {
    /// Batches; the count in `held` bounds what they hold.
    tx: mpsc::UnboundedSender<Batch>,
    /// Events handed over and not yet taken by the stream.
    held: Arc<AtomicUsize>,
    capacity: usize,
}

impl EventFeed {
    /// How many more events the queue takes now.
    pub(super) fn room(&self) -> usize {
        self.capacity
            .saturating_sub(self.held.load(Ordering::Acquire))
    }

    /// Hands `batch` over, at most [`Self::room`] events; false when the
    /// stream has gone.
    pub(super) fn send(&self, batch: Batch) -> bool {
        let events = batch.len();
        if events == 0 {
            return !self.tx.is_closed();
        }
        self.held.fetch_add(events, Ordering::AcqRel);
        self.tx.send(batch).is_ok()
    }

    /// The stream has gone.
    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Events handed to a stream at once, in order.
#[derive(Debug)]
pub(super) enum Batch {
    /// Every event of a published batch: the hub's own list, shared.
    Whole(Published),
    /// Some of them.
    Some(Vec<Arc<Sequenced>>),
}

impl Batch {
    fn len(&self) -> usize {
        match self {
            Self::Whole(events) => events.len(),
            Self::Some(events) => events.len(),
        }
    }
}

/// A batch being taken.
#[derive(Debug)]
enum Taking {
    /// A whole batch, from the event at the index on.
    Whole(Published, usize),
    Some(std::vec::IntoIter<Arc<Sequenced>>),
}

impl Taking {
    fn next(&mut self) -> Option<Arc<Sequenced>> {
        self.own_when_alone();
        match self {
            Self::Whole(events, next) => {
                let event = events.get(*next)?.clone();
                *next += 1;
                if *next == events.len() {
                    // Let go of the batch with its last event.
                    *self = Self::default();
                }
                Some(event)
            }
            Self::Some(events) => events.next(),
        }
    }

    /// A whole batch no other stream or caller holds any more becomes this
    /// stream's own list, so that each event is moved out of it rather than
    /// shared with it: an event's count of holders stays what it was when
    /// each stream had its own list, and [`super::stream`] tells by it
    /// whether another stream will send the event.
    fn own_when_alone(&mut self) {
        if !matches!(self, Self::Whole(events, _) if Arc::strong_count(events) == 1) {
            return;
        }
        let Self::Whole(events, next) = std::mem::take(self) else {
            return;
        };
        *self = match Arc::try_unwrap(events) {
            Ok(mut events) => {
                events.drain(..next.min(events.len()));
                Self::Some(events.into_iter())
            }
            Err(events) => Self::Whole(events, next),
        };
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Whole(events, next) => *next >= events.len(),
            Self::Some(events) => events.len() == 0,
        }
    }
}

impl Default for Taking {
    /// Nothing left to take.
    fn default() -> Self {
        Self::Some(Vec::new().into_iter())
    }
}

impl From<Batch> for Taking {
    fn from(batch: Batch) -> Self {
        match batch {
            Batch::Whole(events) => Self::Whole(events, 0),
            Batch::Some(events) => Self::Some(events.into_iter()),
        }
    }
}

/// The stream's end of its queue.
#[derive(Debug)]
pub struct EventQueue {
    rx: mpsc::UnboundedReceiver<Batch>,
    /// The batch being taken.
    batch: Taking,
    held: Arc<AtomicUsize>,
}

impl EventQueue {
    /// The next event; `None` once the hub has let go of the queue and
    /// everything in it was taken.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Arc<Sequenced>>> {
        loop {
            if let Some(event) = self.take_from_batch() {
                return Poll::Ready(Some(event));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(batch) => self.batch = batch.into(),
                None => return Poll::Ready(None),
            }
        }
    }

    /// The next event if one waits.
    pub fn try_recv(&mut self) -> Option<Arc<Sequenced>> {
        loop {
            if let Some(event) = self.take_from_batch() {
                return Some(event);
            }
            self.batch = self.rx.try_recv().ok()?.into();
        }
    }

    /// The hub has let go of the queue (the agent is stopping).
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }

    /// No event waits.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.rx.is_empty()
    }

    fn take_from_batch(&mut self) -> Option<Arc<Sequenced>> {
        let event = self.batch.next()?;
        self.held.fetch_sub(1, Ordering::AcqRel);
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventKind, event::WallTime};

    fn sequenced(sequence: u64) -> Arc<Sequenced> {
        Arc::new(Sequenced::new(
            sequence,
            Event::new(
                EventKind::ProcessExec,
                WallTime(std::time::SystemTime::UNIX_EPOCH),
                sequence,
                "n1".into(),
            ),
        ))
    }

    #[test]
    fn the_room_is_what_the_stream_has_not_taken_yet() {
        let (feed, mut queue) = event_queue(3);
        assert_eq!(feed.room(), 3);
        assert!(feed.send(Batch::Some(vec![sequenced(1), sequenced(2)])));
        assert_eq!(feed.room(), 1);
        assert_eq!(queue.try_recv().map(|e| e.sequence), Some(1));
        assert_eq!(feed.room(), 2, "a taken event frees its place");
        let whole = Published::new(vec![sequenced(3), sequenced(4)]);
        assert!(feed.send(Batch::Whole(whole.clone())));
        assert_eq!(feed.room(), 0);
        assert_eq!(queue.try_recv().map(|e| e.sequence), Some(2));
        let third = queue.try_recv().expect("the whole batch's first event");
        assert_eq!(third.sequence, 3);
        assert_eq!(
            Arc::strong_count(&third),
            2,
            "shared with the batch, which the caller holds too"
        );
        drop(whole);
        let fourth = queue.try_recv().expect("its second");
        assert_eq!(fourth.sequence, 4);
        assert_eq!(
            Arc::strong_count(&fourth),
            1,
            "moved out of the batch once the stream held it alone"
        );
        assert!(queue.is_empty());
        assert_eq!(feed.room(), 3);
        assert!(queue.try_recv().is_none());
    }

    #[test]
    fn the_stream_ends_after_what_the_queue_holds_once_the_hub_lets_go() {
        let (feed, mut queue) = event_queue(4);
        assert!(feed.send(Batch::Some(vec![sequenced(1)])));
        assert!(
            feed.send(Batch::Some(Vec::new())),
            "nothing to hand over to an open queue"
        );
        drop(feed);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(queue.is_closed());
        assert!(matches!(queue.poll_recv(&mut cx), Poll::Ready(Some(e)) if e.sequence == 1));
        assert!(matches!(queue.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_feed_knows_when_its_stream_has_gone() {
        let (feed, queue) = event_queue(4);
        drop(queue);
        assert!(feed.is_closed());
        assert!(!feed.send(Batch::Some(vec![sequenced(1)])));
        assert!(!feed.send(Batch::Some(Vec::new())));
    }
}
