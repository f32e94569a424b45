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
use aya::maps::{MapData, PerCpuArray};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc::{self, error::TrySendError},
    time::{MissedTickBehavior, interval},
};
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::{bpf::ring::EventRing, enrich::Enricher, metrics::Metrics};

use super::{
    clock::{self, BootClock, Suspended},
    decode::Decoder,
    event::{Event, EventKind, Lost, WallTime},
};

/// How often lost-event counts are checked and, when they moved, reported.
const LOSS_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the boot-time to wall-clock offset is sampled again.
const CLOCK_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The reader's state; [`Reader::run`] consumes it.
pub struct Reader {
    ring: AsyncFd<EventRing>,
    counters: PerCpuArray<MapData, u64>,
    drain_interval: Duration,
    metrics: Arc<Metrics>,
    pipeline: Pipeline,
}

/// Everything a record goes through after the ring buffer. Kept apart from
/// the ring so that a drain can borrow both.
struct Pipeline {
    decoder: Decoder,
    enricher: Enricher,
    tx: mpsc::Sender<Batch>,
    tally: Tally,
    /// The batch being filled.
    batch: Batch,
    /// A batch the full queue could not take yet.
    pending: Option<Batch>,
    /// Ring-buffer bytes read since the drain began: the backlog the
    /// reader found, which is how full the buffer was.
    drained_bytes: u64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("tally", &self.pipeline.tally)
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
        ring: EventRing,
        counters: PerCpuArray<MapData, u64>,
        decoder: Decoder,
        enricher: Enricher,
        tx: mpsc::Sender<Batch>,
        drain_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        // SAFETY: the EventRing owns its map's file descriptor and keeps it open,
        // unchanged, until it is dropped, which the AsyncFd does first.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Self {
            ring,
            counters,
            drain_interval,
            metrics,
            pipeline: Pipeline {
                decoder,
                enricher,
                tx,
                tally: Tally::default(),
                batch: Vec::with_capacity(BATCH_EVENTS),
                pending: None,
                drained_bytes: 0,
            },
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
                        match self.pipeline.drain(guard.get_inner_mut()) {
                            // More waits: let the outputs run, then come back
                            // (the readiness is kept).
                            Drained::More => {
                                drop(guard);
                                tokio::task::yield_now().await;
                            }
                            // A full queue is retried on the drain timer.
                            Drained::Empty | Drained::QueueFull => guard.clear_ready(),
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot poll the events ring buffer");
                        break;
                    }
                },
                _ = drain_timer.tick() => self.drain_all(false).await,
                _ = loss_timer.tick() => {
                    self.report_losses(false).await;
                    let enricher = &mut self.pipeline.enricher;
                    enricher.collect_garbage(clock::boot_ns());
                    let tree = enricher.tree_stats();
                    self.metrics.set_process_tree(
                        tree.entries,
                        tree.evicted_after_grace,
                        tree.evicted_for_capacity,
                    );
                    let names = enricher.name_stats();
                    self.metrics.set_name_cache(names.entries, names.evictions);
                }
                _ = clock_timer.tick() => self.pipeline.decoder.clock = BootClock::now(),
            }
        }
        self.drain_all(true).await;
        self.report_losses(true).await;
        self.pipeline.tally
    }

    /// Drains until the ring buffer is empty, yielding to the outputs between
    /// batches. On a full queue it stops, unless this is the `last` drain at
    /// shutdown, which waits for the outputs to take everything.
    async fn drain_all(&mut self, last: bool) {
        let pipeline = &mut self.pipeline;
        pipeline.drained_bytes = 0;
        loop {
            match pipeline.drain(self.ring.get_mut()) {
                Drained::Empty => {
                    self.metrics.set_ring_backlog(pipeline.drained_bytes);
                    return;
                }
                Drained::More => tokio::task::yield_now().await,
                Drained::QueueFull if !last => {
                    self.metrics.set_ring_backlog(pipeline.drained_bytes);
                    return;
                }
                Drained::QueueFull => {
                    let Some(batch) = pipeline.pending.take() else {
                        continue;
                    };
                    let count = batch.len() as u64;
                    if pipeline.tx.send(batch).await.is_err() {
                        pipeline.tally.queue_full += count;
                        return;
                    }
                    pipeline.tally.delivered += count;
                }
            }
        }
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
        let t = &mut self.pipeline.tally;
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
            lost: Some(Box::new(lost)),
            ..Event::new(
                EventKind::EventsLost,
                WallTime(self.pipeline.decoder.clock.wall_time(monotonic_ns)),
                monotonic_ns,
                self.pipeline.decoder.node.clone(),
            )
        };
        let sent = if last {
            self.pipeline.tx.send(vec![event]).await.is_ok()
        } else {
            self.pipeline.tx.try_send(vec![event]).is_ok()
        };
        if sent {
            let t = &mut self.pipeline.tally;
            t.reported = (t.ring_buffer_full, t.decode_failed, t.queue_full);
        }
    }
}

/// Records handled before the reader yields to the other tasks.
const BATCH: usize = 4096;

/// Events handed to the outputs at once: one queue operation per batch.
pub type Batch = Vec<Event>;

/// Events in a full [`Batch`].
pub const BATCH_EVENTS: usize = 256;

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drained {
    /// The ring buffer is empty.
    Empty,
    /// A batch was handled and more waits.
    More,
    /// The queue to the outputs is full; a batch is pending.
    QueueFull,
}

impl Pipeline {
    /// Reads up to [`BATCH`] records without blocking. When the queue to the
    /// outputs is full the batch in hand is kept pending and reading stops:
    /// the ring buffer holds the backlog (the kernel counts what it cannot
    /// hold) until the outputs catch up.
    fn drain(&mut self, ring: &mut EventRing) -> Drained {
        if !self.send_pending() {
            return Drained::QueueFull;
        }
        self.decoder.suspended = Suspended::now();
        for _ in 0..BATCH {
            let Some(record) = ring.next_record() else {
                return if self.flush() {
                    Drained::Empty
                } else {
                    Drained::QueueFull
                };
            };
            self.tally.records += 1;
            // Each record takes an 8-byte header and is padded to 8 bytes.
            self.drained_bytes += (record.len() as u64 + 8 + 7) & !7;
            let decoded = self.decoder.decode_into(record, &mut self.batch);
            if let Err(e) = decoded {
                self.tally.decode_failed += 1;
                tracing::debug!(error = %e, "undecodable record");
                continue;
            }
            if let Some(event) = self.batch.last_mut() {
                self.enricher.enrich(event);
                self.decoder.keep_enriched(event);
            }
            if self.batch.len() >= BATCH_EVENTS && !self.flush() {
                ring.publish();
                return Drained::QueueFull;
            }
        }
        ring.publish();
        if self.flush() {
            Drained::More
        } else {
            Drained::QueueFull
        }
    }

    /// Hands the batch being filled to the outputs; false when the queue is
    /// full (the batch is then pending).
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_EVENTS));
        self.send(batch)
    }

    /// Retries a pending batch; true when there is none left.
    fn send_pending(&mut self) -> bool {
        match self.pending.take() {
            Some(batch) => self.send(batch),
            None => true,
        }
    }

    fn send(&mut self, batch: Batch) -> bool {
        let count = batch.len() as u64;
        match self.tx.try_send(batch) {
            Ok(()) => {
                self.tally.delivered += count;
                true
            }
            Err(TrySendError::Full(batch)) => {
                self.pending = Some(batch);
                false
            }
            // The outputs have stopped: the agent is shutting down.
            Err(TrySendError::Closed(_)) => {
                self.tally.queue_full += count;
                true
            }
        }
    }
}
