//! One JSON object per line on stdout (`guardrails agent --stdout`).

use std::{collections::BTreeMap, sync::Arc};

use proto::v1::JsonText;
use tokio::{
    io::{AsyncWriteExt, BufWriter},
    sync::mpsc,
};

use crate::{alerts::AlertsInput, api::hub::Hub, events::reader::Batch, metrics::Metrics};

/// Events that reached the end of the pipeline, by kind.
pub type Delivered = BTreeMap<&'static str, u64>;

/// Consumes batches of events until the queue closes. With `print` they are
/// written to stdout, flushed whenever the queue runs empty; without, only
/// counted. Either way they count in `metrics` as handed to the outputs, and
/// then go to the API's streams through `hub`, and their violations and
/// action reports to alerting through `alerts`.
pub async fn run(
    mut rx: mpsc::Receiver<Batch>,
    print: bool,
    metrics: Arc<Metrics>,
    hub: Option<Arc<Hub>>,
    alerts: Option<AlertsInput>,
) -> Delivered {
    let mut out = BufWriter::new(tokio::io::stdout());
    let mut delivered = Delivered::new();
    let mut broken = !print;
    while let Some(batch) = rx.recv().await {
        // Counted by runs of one kind: a batch is mostly one or two kinds,
        // and each count is a shared counter raised.
        for run in batch.chunk_by(|a, b| a.kind == b.kind) {
            if let Some(first) = run.first() {
                let events = run.len() as u64;
                *delivered.entry(first.kind.as_str()).or_default() += events;
                metrics.count_events(first.kind, events);
            }
        }
        if let Some(alerts) = &alerts {
            alerts.offer(&batch);
        }
        // The streams get the batch first, so that whatever is seen on
        // stdout can also be resumed from; both share one serialization.
        let lines: Vec<JsonText> = match &hub {
            Some(hub) if !broken => hub.publish(batch).iter().map(|e| e.json()).collect(),
            Some(hub) => {
                hub.publish_only(batch);
                Vec::new()
            }
            None if !broken => batch.iter().filter_map(json).collect(),
            None => Vec::new(),
        };
        if !broken {
            broken = print_lines(&mut out, &lines).await;
        }
        if !broken
            && rx.is_empty()
            && let Err(e) = out.flush().await
        {
            tracing::error!(error = %e, "stdout is gone; events are no longer printed");
            broken = true;
        }
    }
    if !broken && let Err(e) = out.flush().await {
        tracing::error!(error = %e, "cannot flush stdout");
    }
    delivered
}

fn json(event: &crate::events::Event) -> Option<JsonText> {
    crate::events::json::to_text(event)
        .map(JsonText::from_shared)
        .map_err(|e| tracing::error!(error = %e, "cannot serialize an event"))
        .ok()
}

/// Writes lines; true when stdout is gone.
async fn print_lines(out: &mut BufWriter<tokio::io::Stdout>, lines: &[JsonText]) -> bool {
    for line in lines {
        if let Err(e) = out.write_all(line.as_bytes()).await {
            tracing::error!(error = %e, "stdout is gone; events are no longer printed");
            return true;
        }
        if let Err(e) = out.write_all(b"\n").await {
            tracing::error!(error = %e, "stdout is gone; events are no longer printed");
            return true;
        }
    }
    false
}
