//! One JSON object per line on stdout (`guardrails agent --stdout`).

use std::{collections::BTreeMap, sync::Arc};

use tokio::{
    io::{AsyncWriteExt, BufWriter},
    sync::mpsc,
};

use crate::{api::hub::Hub, events::reader::Batch, metrics::Metrics};

/// Events that reached the end of the pipeline, by kind.
pub type Delivered = BTreeMap<&'static str, u64>;

/// Consumes batches of events until the queue closes. With `print` they are
/// written to stdout, flushed whenever the queue runs empty; without, only
/// counted. Either way they count in `metrics` as handed to the outputs, and
/// then go to the API's streams through `hub`.
pub async fn run(
    mut rx: mpsc::Receiver<Batch>,
    print: bool,
    metrics: Arc<Metrics>,
    hub: Option<Arc<Hub>>,
) -> Delivered {
    let mut out = BufWriter::new(tokio::io::stdout());
    let mut delivered = Delivered::new();
    let mut broken = !print;
    while let Some(batch) = rx.recv().await {
        for event in &batch {
            *delivered.entry(event.kind.as_str()).or_default() += 1;
            metrics.count_event(event.kind);
        }
        if !broken {
            broken = print_batch(&mut out, &batch).await;
        }
        if !broken
            && rx.is_empty()
            && let Err(e) = out.flush().await
        {
            tracing::error!(error = %e, "stdout is gone; events are no longer printed");
            broken = true;
        }
        if let Some(hub) = &hub {
            hub.publish(batch);
        }
    }
    if !broken && let Err(e) = out.flush().await {
        tracing::error!(error = %e, "cannot flush stdout");
    }
    delivered
}

/// Writes a batch; true when stdout is gone.
async fn print_batch(out: &mut BufWriter<tokio::io::Stdout>, batch: &Batch) -> bool {
    for event in batch {
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize an event");
                continue;
            }
        };
        line.push(b'\n');
        if let Err(e) = out.write_all(&line).await {
            tracing::error!(error = %e, "stdout is gone; events are no longer printed");
            return true;
        }
    }
    false
}
