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

use futures::Stream;
use proto::v1::{self, stream_events_response::Message};
use tokio::sync::mpsc;
use tonic::Status;

use super::{
    hub::{Missed, Sequenced, Subscription},
    mask::Mask,
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
    queue: mpsc::Receiver<Arc<Sequenced>>,
    /// An event taken from the queue while a `lost` message went first.
    held: Option<Arc<Sequenced>>,
    report: tokio::time::Interval,
    stats: Arc<super::hub::ClientStats>,
    mask: Mask,
    run_id: Arc<str>,
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
            stopped: false,
        }
    }

    fn event(&self, item: &Sequenced) -> v1::StreamEventsResponse {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        event_message(item, &self.mask, &self.run_id)
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

/// The message of one event.
pub(super) fn event_message(
    item: &Sequenced,
    mask: &Mask,
    run_id: &str,
) -> v1::StreamEventsResponse {
    v1::StreamEventsResponse {
        message: Some(Message::Event(v1::Event {
            cursor: Some(v1::Cursor {
                run_id: run_id.to_owned(),
                sequence: item.sequence,
            }),
            kind: item.event.kind.as_str().into(),
            json: mask.apply(item),
        })),
    }
}
