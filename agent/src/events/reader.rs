//! The task that drains the kernel's ring buffer.
//!
//! It wakes when the kernel signals that enough data waits (the kernel batches
//! wake-ups, see `transport.wakeup_bytes`) and on its own timer, so that a
//! quiet node still delivers within `transport.drain_interval_ms`. Records are
//! decoded and handed to the outputs over a bounded queue; the reader never
//! waits on it. Everything lost on the way, in the kernel, in decoding or at
//! the queue, is counted and reported as an `events_lost` event.

use std::time::Duration;

use agent_common::Counter;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc::{self, error::TrySendError},
    time::{MissedTickBehavior, interval},
};
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::{enrich::Enricher, metrics::Metrics};

use super::{
    clock::{self, BootClock},
    decode::Decoder,
    event::{Event, EventKind, Lost, SCHEMA_VERSION},
};

/// How often lost-event counts are checked and, when they moved, reported.
const LOSS_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the boot-time to wall-clock offset is sampled again.
const CLOCK_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The reader's state; [`Reader::run`] consumes it.
pub struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    decoder: Decoder,
    enricher: Enricher,
    tx: mpsc::Sender<Event>,
    drain_interval: Duration,
    tally: Tally,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("tally", &self.tally)
            .finish_non_exhaustive()
    }
}

/// What the reader did, for the log line at shutdown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records read from the ring buffer.
    pub records: u64,
    /// Events handed to the outputs.
    pub delivered: u64,
    /// Lost in the kernel (ring buffer full), in total.
    pub ring_buffer_full: u64,
    /// Records that did not decode, in total.
    pub decode_failed: u64,
    /// Events dropped at the full queue, in total.
    pub queue_full: u64,
    /// The part of each count above already reported in an `events_lost`.
    reported: (u64, u64, u64),
}

impl Tally {
    /// Everything lost so far.
    pub fn lost(&self) -> u64 {
        self.ring_buffer_full + self.decode_failed + self.queue_full
    }
}

impl Reader {
    /// A reader of `ring` that sends to `tx`.
    pub fn new(
        ring: RingBuf<MapData>,
        counters: PerCpuArray<MapData, u64>,
        decoder: Decoder,
        enricher: Enricher,
        tx: mpsc::Sender<Event>,
        drain_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        // SAFETY: the RingBuf owns its map's file descriptor and keeps it open,
        // unchanged, until it is dropped, which the AsyncFd does first.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Self {
            ring,
            counters,
            decoder,
            enricher,
            tx,
            drain_interval,
            tally: Tally::default(),
            metrics,
        })
    }

    /// Drains until `shutdown`, then once more: the caller detaches the hooks
    /// before cancelling, so that final drain sees every record there will be.
    pub async fn run(mut self, shutdown: CancellationToken) -> Tally {
        let mut drain_timer = interval(self.drain_interval);
        drain_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut loss_timer = interval(LOSS_REPORT_INTERVAL);
        loss_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut clock_timer = interval(CLOCK_REFRESH_INTERVAL);
        clock_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);

        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                ready = self.ring.readable_mut() => match ready {
                    Ok(mut guard) => {
                        drain(guard.get_inner_mut(), &self.decoder, &mut self.enricher, &self.tx, &mut self.tally, &self.metrics);
                        guard.clear_ready();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot poll the events ring buffer");
                        break;
                    }
                },
                _ = drain_timer.tick() => {
                    drain(self.ring.get_mut(), &self.decoder, &mut self.enricher, &self.tx, &mut self.tally, &self.metrics);
                }
                _ = loss_timer.tick() => {
                    self.report_losses(false).await;
                    self.enricher.collect_garbage(clock::boot_ns());
                    let tree = self.enricher.tree_stats();
                    self.metrics.set_process_tree(
                        tree.entries,
                        tree.evicted_after_grace,
                        tree.evicted_for_capacity,
                    );
                }
                _ = clock_timer.tick() => self.decoder.clock = BootClock::now(),
            }
        }
        drain(
            self.ring.get_mut(),
            &self.decoder,
            &mut self.enricher,
            &self.tx,
            &mut self.tally,
            &self.metrics,
        );
        self.report_losses(true).await;
        self.tally
    }

    /// Reads the kernel's counters and, when anything was lost since the last
    /// report, sends an `events_lost` event. At the end (`last`) the report
    /// waits for room in the queue; before that it is retried on the next tick.
    async fn report_losses(&mut self, last: bool) {
        let per_cpu = match self.counters.get(&(Counter::RingbufFull as u32), 0) {
            Ok(values) => values.iter().copied().collect::<Vec<u64>>(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the kernel's lost-event counters");
                return;
            }
        };
        let t = &mut self.tally;
        t.ring_buffer_full = per_cpu.iter().sum();
        self.metrics
            .set_lost(&per_cpu, t.decode_failed, t.queue_full);
        let (ring, decode, queue) = t.reported;
        let lost = Lost {
            ring_buffer_full: t.ring_buffer_full - ring,
            ring_buffer_full_per_cpu: per_cpu,
            decode_failed: t.decode_failed - decode,
            queue_full: t.queue_full - queue,
            total: t.lost(),
        };
        if lost.ring_buffer_full + lost.decode_failed + lost.queue_full == 0 {
            return;
        }
        tracing::warn!(
            ring_buffer_full = lost.ring_buffer_full,
            decode_failed = lost.decode_failed,
            queue_full = lost.queue_full,
            total = lost.total,
            "events lost"
        );
        let monotonic_ns = clock::boot_ns();
        let event = Event {
            schema_version: SCHEMA_VERSION,
            kind: EventKind::EventsLost,
            time: self.decoder.clock.rfc3339(monotonic_ns),
            monotonic_ns,
            node: self.decoder.node.clone(),
            cpu: None,
            process: None,
            container: None,
            fork: None,
            exit: None,
            lost: Some(lost),
            syscall: None,
            tcp_state: None,
        };
        let sent = if last {
            self.tx.send(event).await.is_ok()
        } else {
            self.tx.try_send(event).is_ok()
        };
        if sent {
            self.metrics.count_event(EventKind::EventsLost);
            let t = &mut self.tally;
            t.reported = (t.ring_buffer_full, t.decode_failed, t.queue_full);
        }
    }
}

/// Reads every record that waits, without blocking.
fn drain(
    ring: &mut RingBuf<MapData>,
    decoder: &Decoder,
    enricher: &mut Enricher,
    tx: &mpsc::Sender<Event>,
    tally: &mut Tally,
    metrics: &Metrics,
) {
    while let Some(record) = ring.next() {
        tally.records += 1;
        let mut event = match decoder.decode(&record) {
            Ok(event) => event,
            Err(e) => {
                tally.decode_failed += 1;
                tracing::debug!(error = %e, "undecodable record");
                continue;
            }
        };
        enricher.enrich(&mut event);
        let kind = event.kind;
        match tx.try_send(event) {
            Ok(()) => {
                tally.delivered += 1;
                metrics.count_event(kind);
            }
            Err(TrySendError::Full(_)) => tally.queue_full += 1,
            // The outputs have stopped: the agent is shutting down.
            Err(TrySendError::Closed(_)) => tally.queue_full += 1,
        }
    }
}
