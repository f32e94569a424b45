//! One JSON object per line on stdout (`guardrails agent --stdout`).

use std::collections::BTreeMap;

use tokio::{
    io::{AsyncWriteExt, BufWriter},
    sync::mpsc,
};

use crate::events::Event;

/// Events that reached the end of the pipeline, by kind.
pub type Delivered = BTreeMap<&'static str, u64>;

/// Consumes events until the queue closes. With `print` they are written to
/// stdout, flushed whenever the queue runs empty; without, only counted.
pub async fn run(mut rx: mpsc::Receiver<Event>, print: bool) -> Delivered {
    let mut out = BufWriter::new(tokio::io::stdout());
    let mut delivered = Delivered::new();
    let mut broken = !print;
    while let Some(event) = rx.recv().await {
        *delivered.entry(event.kind.as_str()).or_default() += 1;
        if broken {
            continue;
        }
        let mut line = match serde_json::to_vec(&event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize an event");
                continue;
            }
        };
        line.push(b'\n');
        let mut result = out.write_all(&line).await;
        if result.is_ok() && rx.is_empty() {
            result = out.flush().await;
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "stdout is gone; events are no longer printed");
            broken = true;
        }
    }
    if !broken && let Err(e) = out.flush().await {
        tracing::error!(error = %e, "cannot flush stdout");
    }
    delivered
}
