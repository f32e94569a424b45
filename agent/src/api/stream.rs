//! One client's event stream, as the transport pulls it: what it missed
//! that is gone, the replay, then live events from its queue in the hub,
//! each preceded by a `lost` message when events were dropped for it since
//! the last one it got.
//!
//! The transport polls the stream directly, so that it encodes as many
//! waiting events as fit in one write, with no task or channel between the
//! queue and the socket.

use std::{
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use bytes::{BufMut, BytesMut};
use futures::Stream;
use proto::v1::{self, JsonText, stream_events_response::Message};
use tonic::Status;

use super::{
    hub::{Missed, Sequenced, Subscription, sendable},
    mask::Mask,
    queue::EventQueue,
};

/// How soon a stream learns of losses when no event follows them.
const LOSS_REPORT: Duration = Duration::from_millis(500);

/// A stream of `StreamEventsResponse`s for one client.
#[derive(Debug)]
pub struct EventStream {
    missed: Option<Missed>,
    replay: std::vec::IntoIter<Arc<Sequenced>>,
    last_replayed: u64,
    replay_only: bool,
    queue: EventQueue,
    /// An event taken from the queue while a `lost` message went first.
    held: Option<Arc<Sequenced>>,
    report: tokio::time::Interval,
    stats: Arc<super::hub::ClientStats>,
    mask: Mask,
    run_id: Arc<str>,
    /// Where this stream writes the JSON of events no other stream sends:
    /// each message takes a slice of it, and the space is reused once the
    /// transport has encoded the message.
    json: BytesMut,
    /// The agent stopped publishing and the client was told.
    stopped: bool,
}

/// How a live stream ends when the agent stops: UNAVAILABLE, the code
/// clients retry on, after every event published before the stop.
pub const STOPPING: &str = "the agent is stopping; every event it published was sent: \
                            resume after the last cursor once it runs again";

impl EventStream {
    /// The stream of `subscription`, its events cut by `mask`.
    pub fn new(
        subscription: Subscription,
        mask: Mask,
        replay_only: bool,
        run_id: Arc<str>,
    ) -> Self {
        let Subscription {
            missed,
            replay,
            queue,
            stats,
        } = subscription;
        let mut report = tokio::time::interval(LOSS_REPORT);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            missed,
            last_replayed: replay.last().map_or(0, |e| e.sequence),
            replay: replay.into_iter(),
            replay_only,
            queue,
            held: None,
            report,
            stats,
            mask,
            run_id,
            json: BytesMut::new(),
            stopped: false,
        }
    }

    fn event(&mut self, item: &Arc<Sequenced>) -> v1::StreamEventsResponse {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        let json = if !self.mask.is_empty() || shares_json(item) {
            self.mask.apply(item)
        } else {
            self.write_json(item)
        };
        message(item, json, &self.run_id)
    }

    /// The event's JSON written into this stream's buffer, not kept: with
    /// no other holder but the replay buffer, no other stream will send it
    /// soon, and keeping a few KiB per event for the replay buffer's life
    /// made a client that reads a long replay, or lags far behind a burst,
    /// cost fresh memory for every event it received.
    fn write_json(&mut self, item: &Sequenced) -> JsonText {
        self.json.clear();
        let written = crate::events::json::write(&item.event, (&mut self.json).writer())
            .map(|()| JsonText::from_shared(self.json.split().freeze()));
        sendable(written)
    }

    fn unreported_loss(&self) -> Option<v1::StreamEventsResponse> {
        let dropped = self.stats.unreported.swap(0, Ordering::Relaxed);
        (dropped > 0).then(|| lost(v1::lost::Reason::ClientTooSlow, dropped))
    }
}

impl Stream for EventStream {
    type Item = Result<v1::StreamEventsResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(missed) = this.missed.take() {
            let reason = if missed.run_changed {
                v1::lost::Reason::RunChanged
            } else {
                v1::lost::Reason::ReplayExpired
            };
            return Poll::Ready(Some(Ok(lost(reason, missed.count))));
        }
        if let Some(item) = this.replay.next() {
            return Poll::Ready(Some(Ok(this.event(&item))));
        }
        if this.replay_only {
            return Poll::Ready(None);
        }
        if let Some(item) = this.held.take() {
            return Poll::Ready(Some(Ok(this.event(&item))));
        }
        loop {
            match this.queue.poll_recv(cx) {
                Poll::Ready(Some(item)) => {
                    if item.sequence <= this.last_replayed {
                        continue;
                    }
                    if let Some(loss) = this.unreported_loss() {
                        this.held = Some(item);
                        return Poll::Ready(Some(Ok(loss)));
                    }
                    return Poll::Ready(Some(Ok(this.event(&item))));
                }
                Poll::Ready(None) => {
                    if let Some(loss) = this.unreported_loss() {
                        return Poll::Ready(Some(Ok(loss)));
                    }
                    if this.stopped {
                        return Poll::Ready(None);
                    }
                    this.stopped = true;
                    return Poll::Ready(Some(Err(Status::unavailable(STOPPING))));
                }
                Poll::Pending => {}
            }
            // No event waits: losses at the end of a burst are reported
            // within a moment.
            match this.report.poll_tick(cx) {
                Poll::Ready(_) => {
                    if let Some(loss) = this.unreported_loss() {
                        return Poll::Ready(Some(Ok(loss)));
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        tracing::info!(client = self.stats.id, "event stream closed");
    }
}

fn lost(reason: v1::lost::Reason, count: u64) -> v1::StreamEventsResponse {
    v1::StreamEventsResponse {
        message: Some(Message::Lost(v1::Lost {
            reason: reason.into(),
            count,
        })),
    }
}

/// Whether `item`'s JSON is written once and kept for every stream that
/// sends it: when it is already written, or when more than this stream and
/// the replay buffer hold the event (other streams' queues, the outputs).
fn shares_json(item: &Arc<Sequenced>) -> bool {
    item.written_json().is_some() || Arc::strong_count(item) > 2
}

fn message(item: &Sequenced, json: JsonText, run_id: &str) -> v1::StreamEventsResponse {
    v1::StreamEventsResponse {
        message: Some(Message::Event(v1::Event {
            cursor: Some(v1::Cursor {
                run_id: run_id.to_owned(),
                sequence: item.sequence,
            }),
            kind: item.event.kind.as_str().into(),
            json,
        })),
    }
}

#[cfg(test)]
pub(in crate::api) mod tests {
    use futures::StreamExt as _;

    use super::*;
    use crate::{
        api::{
            filter::Filter,
            hub::{Hub, HubLimits, Start},
        },
        events::{Event, EventKind, event::WallTime},
    };

    /// A hub of a few events for tests.
    pub(in crate::api) fn hub() -> Hub {
        Hub::new(
            "run-1".into(),
            HubLimits {
                replay_events: 8,
                client_queue: 8,
            },
        )
    }

    /// A live stream of every event of `hub`, whole.
    pub(in crate::api) fn stream(hub: &Hub) -> EventStream {
        let subscription = hub.subscribe(Filter::default(), &Start::Live, "test".into());
        EventStream::new(subscription, Mask::default(), false, "run-1".into())
    }

    fn event() -> Event {
        Event::new(
            EventKind::Syscall,
            WallTime::parse("2026-11-28T11:00:00Z").expect("a time"),
            1,
            "n1".into(),
        )
    }

    async fn json(stream: &mut EventStream) -> JsonText {
        match stream.next().await {
            Some(Ok(v1::StreamEventsResponse {
                message: Some(Message::Event(event)),
            })) => event.json,
            other => panic!("an event, not {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_event_only_one_stream_sends_is_written_for_it_and_not_kept() {
        let hub = hub();
        let mut only = stream(&hub);
        drop(hub.publish(vec![event(), event()]));
        let sent = json(&mut only).await;
        // The replay buffer's copy of the event, taken after it was sent.
        let everything = Start::After {
            run_id: String::new(),
            sequence: 0,
        };
        let replay = hub
            .subscribe(Filter::default(), &everything, "test".into())
            .replay;
        let first = &replay[0];
        assert!(first.written_json().is_none(), "its JSON was kept");
        assert_eq!(sent, first.json(), "the same JSON as the shared writer's");
        drop(replay);
        // The second event's JSON reuses the buffer once the first's message
        // is gone.
        let address = sent.as_bytes().as_ptr();
        drop(sent);
        assert_eq!(json(&mut only).await.as_bytes().as_ptr(), address);
    }

    #[tokio::test]
    async fn an_event_several_streams_send_is_written_once_for_all() {
        let hub = hub();
        let mut streams = [stream(&hub), stream(&hub), stream(&hub)];
        let published = hub.publish(vec![event()]);
        let item = published[0].clone();
        drop(published);
        let mut sent = Vec::new();
        for stream in &mut streams {
            sent.push(json(stream).await);
        }
        let kept = item
            .written_json()
            .expect("kept for the other streams")
            .clone();
        for json in sent {
            assert_eq!(json.as_bytes().as_ptr(), kept.as_bytes().as_ptr());
        }
    }
}
