//! Where events meet the API's streams: the hub numbers every event of the
//! run, keeps the most recent in a bounded replay buffer, and offers each to
//! every stream whose filter it passes, through that stream's own bounded
//! queue. Publishing never waits: an event for a full queue is dropped for
//! that stream alone and counted, to be reported to it.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use once_cell::race::OnceBox;
use proto::v1::JsonText;

use super::{
    filter::{Filter, LastSubject},
    queue::{Batch, EventFeed, EventQueue, event_queue},
};
use crate::events::Event;

/// A batch as published: shared by the streams that take all of it and
/// handed back to the caller.
pub type Published = Arc<Vec<Arc<Sequenced>>>;

/// An event with its sequence number, shared by the replay buffer and every
/// stream that receives it; its JSON is written once, by the first stream
/// that needs it.
#[derive(Debug)]
pub struct Sequenced {
    /// 1 for the run's first event.
    pub sequence: u64,
    /// The event.
    pub event: Event,
    /// The event's JSON once written: eight bytes until then (a
    /// `OnceLock<JsonText>` took 40, and a queued event's size is the
    /// memory a burst costs). Two threads that write it at once both do,
    /// and one's is kept.
    json: OnceBox<JsonText>,
}

impl Sequenced {
    /// Event number `sequence`.
    pub fn new(sequence: u64, event: Event) -> Self {
        Self {
            sequence,
            event,
            json: OnceBox::new(),
        }
    }

    /// The event's JSON, if an output or a stream has written it.
    pub fn written_json(&self) -> Option<&JsonText> {
        self.json.get()
    }

    /// The event as JSON, in the event schema, written once and kept for
    /// every output and stream that sends it.
    pub fn json(&self) -> JsonText {
        self.json
            .get_or_init(|| {
                Box::new(sendable(
                    crate::events::json::to_text(&self.event).map(JsonText::from_shared),
                ))
            })
            .clone()
    }
}

/// The JSON of an event as written, or, if it could not be written (logged),
/// an empty object: the stream still gets the event's cursor.
pub(super) fn sendable(written: serde_json::Result<JsonText>) -> JsonText {
    written.unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialize an event");
        JsonText::from("{}")
    })
}

/// What a stream has been sent and lost, for GetStatus.
#[derive(Debug)]
pub struct ClientStats {
    /// Given at connection.
    pub id: u64,
    /// The peer as the transport names it.
    pub peer: String,
    /// Events sent.
    pub sent: AtomicU64,
    /// Events dropped because its queue was full, since it connected.
    pub lost: AtomicU64,
    /// Of those, not reported to it yet.
    pub unreported: AtomicU64,
}

#[derive(Debug)]
struct Subscriber {
    filter: Arc<Filter>,
    queue: EventFeed,
    stats: Arc<ClientStats>,
}

impl Subscriber {
    /// The events of `batch` that pass the filter and fit in the queue, and
    /// how many more passed and did not fit.
    fn offer(&self, batch: &Published) -> (Batch, u64) {
        let room = self.queue.room();
        let everything = self.filter.passes_everything();
        // Until an event fails the filter, the events that passed are the
        // batch's first ones: nothing is listed for them yet.
        let mut passed = 0;
        let mut listed: Option<Vec<Arc<Sequenced>>> = None;
        let mut dropped = 0;
        let mut last = LastSubject::default();
        for (index, item) in batch.iter().enumerate() {
            if !everything && !self.filter.matches_after(&item.event, &mut last) {
                if listed.is_none() {
                    let mut list = Vec::with_capacity(room.min(batch.len() - index + passed));
                    list.extend(batch[..passed].iter().cloned());
                    listed = Some(list);
                }
                continue;
            }
            if passed == room {
                dropped += 1;
                continue;
            }
            passed += 1;
            if let Some(list) = &mut listed {
                list.push(item.clone());
            }
        }
        let queued = match listed {
            None if passed == batch.len() => Batch::Whole(batch.clone()),
            None => Batch::Some(batch[..passed].to_vec()),
            Some(list) => Batch::Some(list),
        };
        (queued, dropped)
    }
}

/// The hub's state, behind its lock.
#[derive(Debug)]
struct State {
    last_sequence: u64,
    replay: VecDeque<Arc<Sequenced>>,
    subscribers: Vec<Subscriber>,
    next_client: u64,
    /// The agent is stopping: nothing more is published.
    closed: bool,
}

impl State {
    /// Offers `published` to every stream; returns how many events were
    /// dropped for streams whose queue was full, each counted for its
    /// stream at once (it reports what it lost before the next event it
    /// gets). Streams that went away are forgotten.
    fn offer(&mut self, published: &Published) -> u64 {
        let mut lost = 0;
        let mut closed = false;
        for subscriber in &self.subscribers {
            let (queued, dropped) = subscriber.offer(published);
            if dropped > 0 {
                let stats = &subscriber.stats;
                stats.lost.fetch_add(dropped, Ordering::Relaxed);
                stats.unreported.fetch_add(dropped, Ordering::Relaxed);
                lost += dropped;
            }
            closed |= !subscriber.queue.send(queued);
        }
        if closed {
            self.subscribers.retain(|s| !s.queue.is_closed());
        }
        lost
    }
}

/// Sizes of the hub.
#[derive(Clone, Copy, Debug)]
pub struct HubLimits {
    /// Events kept for replay.
    pub replay_events: usize,
    /// Events queued per stream.
    pub client_queue: usize,
}

/// The hub; shared by the output step (publishing) and the API (streams).
#[derive(Debug)]
pub struct Hub {
    run_id: String,
    limits: HubLimits,
    state: Mutex<State>,
    lost_to_clients: AtomicU64,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// Where a new stream starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// Live events only.
    Live,
    /// After this cursor of this run; an empty run id with `sequence` 0 asks
    /// for whatever the buffer holds, with no loss reported for older events.
    After {
        /// The run the cursor is from.
        run_id: String,
        /// The last event the client has.
        sequence: u64,
    },
}

/// How a stream begins: what it missed that is gone, the buffered events it
/// missed, and its queue for what follows.
#[derive(Debug)]
pub struct Subscription {
    /// Events it missed that the buffer no longer holds, and whether the
    /// cursor was from another run.
    pub missed: Option<Missed>,
    /// Buffered events after the cursor that pass the filter, in order.
    pub replay: Vec<Arc<Sequenced>>,
    /// Live events, from the one after the replay.
    pub queue: EventQueue,
    /// Its counters.
    pub stats: Arc<ClientStats>,
}

/// Events a resuming stream cannot have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missed {
    /// How many (before filtering: they are gone).
    pub count: u64,
    /// The cursor was from another run of the agent.
    pub run_changed: bool,
}

impl Hub {
    /// An empty hub for a run with id `run_id`.
    pub fn new(run_id: String, limits: HubLimits) -> Self {
        Self {
            run_id,
            limits,
            state: Mutex::new(State {
                last_sequence: 0,
                replay: VecDeque::with_capacity(limits.replay_events.min(1 << 16)),
                subscribers: Vec::new(),
                next_client: 1,
                closed: false,
            }),
            lost_to_clients: AtomicU64::new(0),
            metrics: None,
        }
    }

    /// Publishes the hub's figures to `/metrics` after each batch.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// This run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The last sequence number given.
    pub fn last_sequence(&self) -> u64 {
        self.lock().last_sequence
    }

    /// Events dropped for slow streams since the start.
    pub fn lost_to_clients(&self) -> u64 {
        self.lost_to_clients.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers a batch, buffers it, and offers it to the streams; returns
    /// it numbered, for the other outputs (which share its JSON).
    pub fn publish(&self, batch: Vec<Event>) -> Published {
        self.publish_into(batch, true).unwrap_or_default()
    }

    /// [`Hub::publish`] for a caller that wants nothing back: with no
    /// stream connected, the common case, each event goes to the buffer
    /// alone, its count raised and dropped once less.
    pub fn publish_only(&self, batch: Vec<Event>) {
        drop(self.publish_into(batch, false));
    }

    /// The batch numbered, when the caller wants it or a stream is
    /// offered it.
    fn publish_into(&self, batch: Vec<Event>, wanted: bool) -> Option<Published> {
        let mut state = self.lock();
        let listed = wanted || !state.subscribers.is_empty();
        let mut published = Vec::with_capacity(if listed { batch.len() } else { 0 });
        for event in batch {
            state.last_sequence += 1;
            // The event the buffer lets go of, when nothing else holds it,
            // lends its allocation to this one: it was just read to be
            // dropped, so this event is written into memory in the cache
            // instead of into a freed block last touched 8,192 events ago.
            // (With no buffer, there is nothing to let go of.)
            let evicted = if state.replay.len() >= self.limits.replay_events {
                state.replay.pop_front()
            } else {
                None
            };
            let sequenced = Sequenced::new(state.last_sequence, event);
            let item = match evicted {
                Some(mut reused) => {
                    if let Some(slot) = Arc::get_mut(&mut reused) {
                        *slot = sequenced;
                        reused
                    } else {
                        Arc::new(sequenced)
                    }
                }
                None => Arc::new(sequenced),
            };
            match (listed, self.limits.replay_events > 0) {
                (true, true) => {
                    state.replay.push_back(item.clone());
                    published.push(item);
                }
                (true, false) => published.push(item),
                (false, true) => state.replay.push_back(item),
                (false, false) => {}
            }
        }
        let published = listed.then(|| Published::new(published));
        let lost = published.as_ref().map_or(0, |p| state.offer(p));
        if lost > 0 {
            self.lost_to_clients.fetch_add(lost, Ordering::Relaxed);
        }
        if let Some(metrics) = &self.metrics {
            metrics.set_api(
                state.subscribers.len(),
                self.lost_to_clients.load(Ordering::Relaxed),
                state.last_sequence,
            );
            metrics.set_api_clients(
                state
                    .subscribers
                    .iter()
                    .map(|s| {
                        (
                            s.stats.id,
                            s.stats.peer.clone(),
                            s.stats.lost.load(Ordering::Relaxed),
                        )
                    })
                    .collect(),
            );
        }
        published
    }

    /// Registers a stream. The replay and the queue are taken under one
    /// lock, so that the stream sees every event after its start exactly
    /// once.
    pub fn subscribe(&self, filter: Filter, start: &Start, peer: String) -> Subscription {
        let filter = Arc::new(filter);
        let (tx, queue) = event_queue(self.limits.client_queue.max(1));
        let mut state = self.lock();
        let stats = Arc::new(ClientStats {
            id: state.next_client,
            peer,
            sent: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
        });
        state.next_client += 1;
        let (missed, replay) = match start {
            Start::Live => (None, Vec::new()),
            Start::After { run_id, sequence } => {
                let run_changed = run_id != &self.run_id && !run_id.is_empty();
                let after = if run_changed { 0 } else { *sequence };
                let oldest = state
                    .replay
                    .front()
                    .map_or(state.last_sequence + 1, |e| e.sequence);
                let gone = oldest.saturating_sub(after + 1);
                let replay: Vec<Arc<Sequenced>> = state
                    .replay
                    .iter()
                    .filter(|e| e.sequence > after && filter.matches(&e.event))
                    .cloned()
                    .collect();
                // Asking for the whole buffer (no run, sequence 0) misses
                // nothing: what is older was never asked for.
                let whole_buffer = run_id.is_empty() && *sequence == 0;
                let missed = (!whole_buffer && (gone > 0 || run_changed)).then_some(Missed {
                    count: gone,
                    run_changed,
                });
                (missed, replay)
            }
        };
        // After `close`, the queue is born closed: the stream sends its
        // replay and ends.
        if !state.closed {
            state.subscribers.push(Subscriber {
                filter,
                queue: tx,
                stats: stats.clone(),
            });
        }
        Subscription {
            missed,
            replay,
            queue,
            stats,
        }
    }

    /// Ends publishing, when the agent stops: each stream receives what is
    /// already in its queue, then ends.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.subscribers.clear();
    }

    /// The streams connected now.
    pub fn clients(&self) -> Vec<Arc<ClientStats>> {
        let mut state = self.lock();
        state.subscribers.retain(|s| !s.queue.is_closed());
        state.subscribers.iter().map(|s| s.stats.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, event::WallTime};

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                Event::new(
                    EventKind::ProcessExec,
                    WallTime(std::time::SystemTime::UNIX_EPOCH),
                    i as u64,
                    "n1".into(),
                )
            })
            .collect()
    }

    /// The cursor of a stream that saw this run up to `sequence`.
    fn after(sequence: u64) -> Start {
        Start::After {
            run_id: "run-a".into(),
            sequence,
        }
    }

    fn hub(replay: usize, queue: usize) -> Hub {
        Hub::new(
            "run-a".into(),
            HubLimits {
                replay_events: replay,
                client_queue: queue,
            },
        )
    }

    #[test]
    fn a_closed_hub_ends_each_queue_after_what_it_holds_and_new_streams_after_their_replay() {
        let hub = hub(8, 16);
        let mut live = hub.subscribe(Filter::default(), &Start::Live, "t".into());
        hub.publish(events(2));
        hub.close();
        let queued: Vec<u64> = std::iter::from_fn(|| live.queue.try_recv())
            .map(|e| e.sequence)
            .collect();
        assert_eq!(queued, [1, 2]);
        assert!(live.queue.is_closed() && live.queue.is_empty());
        assert!(hub.clients().is_empty());

        let start = after(1);
        let late = hub.subscribe(Filter::default(), &start, "t".into());
        assert_eq!(late.replay.len(), 1, "the buffer is still served");
        assert!(late.queue.is_closed(), "but nothing live follows");
    }

    #[test]
    fn events_published_only_are_queued_and_buffered_as_published_ones_are() {
        let hub = hub(8, 16);
        let mut live = hub.subscribe(Filter::default(), &Start::Live, "t".into());
        hub.publish_only(events(3));
        let queued: Vec<Arc<Sequenced>> = std::iter::from_fn(|| live.queue.try_recv()).collect();
        assert_eq!(
            queued.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        // Held by the stream's queue (now here) and the buffer, nothing else.
        assert!(queued.iter().all(|e| Arc::strong_count(e) == 2));
        let start = after(1);
        let late = hub.subscribe(Filter::default(), &start, "t".into());
        let replayed: Vec<u64> = late.replay.iter().map(|e| e.sequence).collect();
        assert_eq!(replayed, [2, 3]);
        assert_eq!(hub.last_sequence(), 3);
    }

    #[test]
    fn with_no_stream_an_event_published_only_is_held_by_the_buffer_alone() {
        let hub = hub(8, 16);
        hub.publish_only(events(2));
        let replay = hub
            .subscribe(Filter::default(), &after(0), "t".into())
            .replay;
        assert_eq!(
            replay.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(
            replay.iter().all(|e| Arc::strong_count(e) == 2),
            "the buffer's and this replay's"
        );
    }

    #[test]
    fn an_event_let_go_of_by_the_buffer_is_overwritten_only_when_nothing_holds_it() {
        let hub = hub(2, 16);
        hub.publish_only(events(2));
        let start = after(0);
        let held = hub.subscribe(Filter::default(), &start, "t".into());
        let times = |items: &[Arc<Sequenced>]| -> Vec<(u64, u64)> {
            items
                .iter()
                .map(|e| (e.sequence, e.event.monotonic_ns))
                .collect()
        };
        assert_eq!(times(&held.replay), [(1, 0), (2, 1)]);
        // 1 and 2 leave the buffer while a stream still holds them.
        hub.publish_only(events(2));
        assert_eq!(times(&held.replay), [(1, 0), (2, 1)], "untouched");
        let later = hub.subscribe(Filter::default(), &start, "t".into());
        assert_eq!(times(&later.replay), [(3, 0), (4, 1)]);
        // Written once, as a stream sending them would.
        for item in &later.replay {
            item.json();
        }
        drop((held, later));
        // Now nothing but the buffer holds 3 and 4: they make room in place.
        hub.publish_only(events(3));
        let last = hub.subscribe(Filter::default(), &start, "t".into());
        assert_eq!(times(&last.replay), [(6, 1), (7, 2)]);
        // The new events do not carry the JSON of those they replaced.
        assert!(last.replay.iter().all(|e| e.written_json().is_none()));
    }

    #[test]
    fn should_replay_what_is_buffered_after_the_cursor_and_count_what_is_gone() {
        let hub = hub(4, 16);
        hub.publish(events(10));
        let start = after(3);
        let sub = hub.subscribe(Filter::default(), &start, "t".into());
        let sequences: Vec<u64> = sub.replay.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, [7, 8, 9, 10]);
        assert_eq!(
            sub.missed,
            Some(Missed {
                count: 3,
                run_changed: false
            }),
            "4, 5 and 6 are gone"
        );
    }

    #[test]
    fn should_replay_the_current_run_from_its_start_after_a_cursor_of_another_run() {
        let hub = hub(8, 16);
        hub.publish(events(3));
        let start = Start::After {
            run_id: "run-old".into(),
            sequence: 999,
        };
        let sub = hub.subscribe(Filter::default(), &start, "t".into());
        assert_eq!(sub.replay.len(), 3);
        assert_eq!(
            sub.missed,
            Some(Missed {
                count: 0,
                run_changed: true
            })
        );
    }

    #[test]
    fn should_report_no_loss_when_the_whole_buffer_is_asked_for() {
        let hub = hub(4, 16);
        hub.publish(events(10));
        let start = Start::After {
            run_id: String::new(),
            sequence: 0,
        };
        let sub = hub.subscribe(Filter::default(), &start, "t".into());
        assert_eq!(sub.replay.len(), 4);
        assert_eq!(sub.missed, None);
    }

    #[test]
    fn each_stream_gets_the_events_of_a_batch_that_pass_its_filter_and_fit_in_order() {
        let roomy = hub(0, 16);
        let hub = hub(0, 3);
        let execs_only = || {
            Filter::new(proto::v1::EventFilter {
                kinds: vec!["process_exec".into()],
                ..Default::default()
            })
            .expect("a valid filter")
        };
        let mut everything = hub.subscribe(Filter::default(), &Start::Live, "all".into());
        let mut execs = hub.subscribe(execs_only(), &Start::Live, "execs".into());
        let mut roomy_execs = roomy.subscribe(execs_only(), &Start::Live, "execs".into());
        // exec, exec, exit, exec, exec: the third and the fifth exec do not
        // fit in a queue of three behind the two before them.
        let batch = || {
            let mut batch = events(5);
            batch[2].kind = EventKind::ProcessExit;
            batch
        };
        let published = hub.publish(batch());
        drop(roomy.publish(batch()));
        let taken = |queue: &mut EventQueue| {
            std::iter::from_fn(|| queue.try_recv())
                .map(|e| e.sequence)
                .collect::<Vec<_>>()
        };
        assert_eq!(taken(&mut everything.queue), [1, 2, 3]);
        assert_eq!(everything.stats.lost.load(Ordering::Relaxed), 2);
        assert_eq!(taken(&mut execs.queue), [1, 2, 4]);
        assert_eq!(execs.stats.lost.load(Ordering::Relaxed), 1);
        assert_eq!(taken(&mut roomy_execs.queue), [1, 2, 4, 5]);
        assert_eq!(roomy_execs.stats.lost.load(Ordering::Relaxed), 0);
        assert_eq!(published.len(), 5);

        // With room for the whole batch, a stream that takes all of it
        // takes it whole, and lets go of it once taken.
        let published = hub.publish(events(2));
        assert_eq!(
            Arc::strong_count(&published),
            3,
            "the caller's and both streams'"
        );
        assert_eq!(taken(&mut everything.queue), [6, 7]);
        assert_eq!(taken(&mut execs.queue), [6, 7]);
        assert_eq!(Arc::strong_count(&published), 1, "let go of once taken");
    }

    #[test]
    fn should_drop_and_count_for_a_full_queue_without_blocking() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let hub = hub(0, 2).with_metrics(metrics.clone());
        let mut slow = hub.subscribe(Filter::default(), &Start::Live, "slow".into());
        let mut fast = hub.subscribe(Filter::default(), &Start::Live, "fast".into());
        hub.publish(events(2));
        assert_eq!(fast.queue.try_recv().map(|e| e.sequence), Some(1));
        assert_eq!(fast.queue.try_recv().map(|e| e.sequence), Some(2));
        hub.publish(events(3));
        assert_eq!(slow.stats.lost.load(Ordering::Relaxed), 3);
        assert_eq!(fast.stats.lost.load(Ordering::Relaxed), 1, "2 of 3 fit");
        assert_eq!(slow.queue.try_recv().map(|e| e.sequence), Some(1));
        assert_eq!(hub.lost_to_clients(), 4);
        let text = metrics.render();
        for series in [
            "guardrails_api_client_events_lost_total{client=\"1\",peer=\"slow\"} 3",
            "guardrails_api_client_events_lost_total{client=\"2\",peer=\"fast\"} 1",
            "guardrails_api_stream_events_lost_total 4",
        ] {
            assert!(text.lines().any(|l| l == series), "{series} in\n{text}");
        }
    }

    #[test]
    fn should_forget_a_stream_that_went_away() {
        let hub = hub(0, 2);
        let sub = hub.subscribe(Filter::default(), &Start::Live, "gone".into());
        drop(sub);
        hub.publish(events(1));
        assert!(hub.clients().is_empty());
    }
}
