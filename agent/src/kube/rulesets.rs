//! The rules resources: watches of `ClusterRuleSet`s and `RuleSet`s that
//! hand every generation to the rules task, and the writer of their status
//! (an `Accepted` condition with the precise error when refused).
//!
//! Every node's agent judges the same resources the same way; the writer
//! reads the status first and patches only what differs, so a change costs
//! one write, not one per node.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use futures::TryStreamExt;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    crd::{ClusterRuleSet, Condition, RuleSet, RuleSetStatus},
    metrics::{KubeMetrics, Watched},
};
use crate::{
    logging::error_chain,
    rules::resources::{Outcome, ResourceKey, ResourceRules, Verdict},
};

/// The condition the agent keeps on each resource.
const ACCEPTED: &str = "Accepted";
/// How soon a status that could not be written is tried again.
const STATUS_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the watches and the status writer. The rules task reads what the
/// watches saw from the returned receiver and answers on the sender.
pub fn spawn(
    client: Client,
    metrics: Arc<KubeMetrics>,
    shutdown: CancellationToken,
) -> (
    watch::Receiver<Vec<ResourceRules>>,
    watch::Sender<Vec<Verdict>>,
) {
    let (seen_tx, seen_rx) = watch::channel(Vec::new());
    let (verdicts_tx, verdicts_rx) = watch::channel(Vec::new());
    let (lists_tx, lists_rx) = mpsc::channel(16);
    tokio::spawn(watch_kind(
        Api::<ClusterRuleSet>::all(client.clone()),
        Watched::ClusterRuleSets,
        |r: &ClusterRuleSet| Some((None, Some(r.spec.rules.clone()), None)),
        lists_tx.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(watch_kind(
        Api::<RuleSet>::all(client.clone()),
        Watched::RuleSets,
        |r: &RuleSet| {
            Some((
                Some(r.namespace()?),
                r.spec.rules.clone(),
                r.spec.mode.map(Into::into),
            ))
        },
        lists_tx,
        metrics,
        shutdown.clone(),
    ));
    tokio::spawn(combine(lists_rx, seen_tx));
    tokio::spawn(write_status(client, verdicts_rx, shutdown));
    (seen_rx, verdicts_tx)
}

/// What a resource of one kind holds: namespace, rules, mode.
type Fields = (Option<String>, Option<String>, Option<crate::actions::Mode>);

/// Watches one kind; after each complete list and each change, sends every
/// resource of that kind.
async fn watch_kind<K>(
    api: Api<K>,
    which: Watched,
    fields: fn(&K) -> Option<Fields>,
    lists: mpsc::Sender<(Watched, Vec<ResourceRules>)>,
    metrics: Arc<KubeMetrics>,
    shutdown: CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = Box::pin(watcher(api, watcher::Config::default()).default_backoff());
    let mut known: BTreeMap<ResourceKey, ResourceRules> = BTreeMap::new();
    let mut listing: Option<BTreeMap<ResourceKey, ResourceRules>> = None;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.try_next() => event,
        };
        let event = match event {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                metrics.set_watch_up(which, false);
                tracing::warn!(
                    error = %error_chain(&e),
                    resource = ?which,
                    "rules resource watch failed (are the CRDs installed?); the rules in force are kept and the watch retried"
                );
                continue;
            }
        };
        metrics.set_watch_up(which, true);
        match event {
            watcher::Event::Init => {
                metrics.count_relist(which);
                listing = Some(BTreeMap::new());
                continue;
            }
            watcher::Event::InitApply(resource) => {
                if let (Some(list), Some(rules)) = (listing.as_mut(), rules_of(&resource, fields)) {
                    list.insert(rules.key.clone(), rules);
                }
                continue;
            }
            watcher::Event::InitDone => {
                metrics.set_synced(which);
                known = listing.take().unwrap_or_default();
            }
            watcher::Event::Apply(resource) => {
                let Some(rules) = rules_of(&resource, fields) else {
                    continue;
                };
                if known.get(&rules.key) == Some(&rules) {
                    // A status write or a metadata change: nothing to judge.
                    continue;
                }
                known.insert(rules.key.clone(), rules);
            }
            watcher::Event::Delete(resource) => {
                if let Some(rules) = rules_of(&resource, fields) {
                    known.remove(&rules.key);
                }
            }
        }
        if lists
            .send((which, known.values().cloned().collect()))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn rules_of<K: Resource>(resource: &K, fields: fn(&K) -> Option<Fields>) -> Option<ResourceRules> {
    let (namespace, rules, mode) = fields(resource)?;
    let meta = resource.meta();
    Some(ResourceRules {
        key: ResourceKey {
            namespace,
            name: meta.name.clone()?,
        },
        generation: meta.generation.unwrap_or_default(),
        rules: rules.map(Arc::from),
        mode,
    })
}

/// Joins both kinds into what the rules task sees.
async fn combine(
    mut lists: mpsc::Receiver<(Watched, Vec<ResourceRules>)>,
    seen: watch::Sender<Vec<ResourceRules>>,
) {
    let mut by_kind: BTreeMap<Watched, Vec<ResourceRules>> = BTreeMap::new();
    while let Some((which, list)) = lists.recv().await {
        by_kind.insert(which, list);
        let all: Vec<ResourceRules> = by_kind.values().flatten().cloned().collect();
        seen.send_if_modified(|current| {
            if *current == all {
                false
            } else {
                *current = all;
                true
            }
        });
    }
}

/// Writes each verdict into its resource's status, where it differs.
async fn write_status(
    client: Client,
    mut verdicts: watch::Receiver<Vec<Verdict>>,
    shutdown: CancellationToken,
) {
    // What each resource's status already says, so that a rules change
    // elsewhere does not make every agent read every resource again.
    let mut written: HashMap<ResourceKey, Verdict> = HashMap::new();
    let mut failed = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = verdicts.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(STATUS_RETRY), if failed => {}
        }
        failed = false;
        let batch = verdicts.borrow_and_update().clone();
        written.retain(|key, _| batch.iter().any(|v| v.key == *key));
        for verdict in &batch {
            if written.get(&verdict.key) == Some(verdict) {
                continue;
            }
            let result = match &verdict.key.namespace {
                Some(namespace) => {
                    let api = Api::<RuleSet>::namespaced(client.clone(), namespace);
                    update(&api, verdict, |r: &RuleSet| r.status.clone()).await
                }
                None => {
                    let api = Api::<ClusterRuleSet>::all(client.clone());
                    update(&api, verdict, |r: &ClusterRuleSet| r.status.clone()).await
                }
            };
            match result {
                Ok(()) => {
                    written.insert(verdict.key.clone(), verdict.clone());
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(
                        resource = %verdict.key,
                        error = %error_chain(&e),
                        retry_in = ?STATUS_RETRY,
                        "cannot write the rules resource's status"
                    );
                }
            }
        }
    }
}

async fn update<K>(
    api: &Api<K>,
    verdict: &Verdict,
    status_of: fn(&K) -> Option<RuleSetStatus>,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(current) = api.get_opt(&verdict.key.name).await? else {
        return Ok(());
    };
    if current.meta().generation.unwrap_or_default() != verdict.generation {
        // A newer generation is being judged; its verdict follows.
        return Ok(());
    }
    let status = status_of(&current).unwrap_or_default();
    let before = status.conditions.iter().find(|c| c.type_ == ACCEPTED);
    let wanted = condition(verdict, before);
    let rules = match verdict.outcome {
        Outcome::Accepted { rules, .. } => Some(u32::try_from(rules).unwrap_or(u32::MAX)),
        _ => status.rules,
    };
    if before == Some(&wanted) && status.rules == rules {
        return Ok(());
    }
    let patch = serde_json::json!({
        "status": RuleSetStatus { conditions: vec![wanted], rules }
    });
    api.patch_status(
        &verdict.key.name,
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Warnings shown in a status message; the rest are counted.
const STATUS_WARNINGS: usize = 10;

/// "generation N is in force (R rules)", then the warnings, one per line, so
/// that `kubectl describe` shows an author what to fix without the agent's log.
fn accepted_message(generation: i64, rules: usize, warnings: &[String]) -> String {
    let mut message = format!("generation {generation} is in force ({rules} rules)");
    if warnings.is_empty() {
        return message;
    }
    message.push_str(&format!(", with {} warning(s):", warnings.len()));
    for warning in warnings.iter().take(STATUS_WARNINGS) {
        message.push('\n');
        message.push_str(warning);
    }
    if warnings.len() > STATUS_WARNINGS {
        message.push_str(&format!(
            "\n... and {} more",
            warnings.len() - STATUS_WARNINGS
        ));
    }
    message
}

/// The `Accepted` condition a verdict calls for; the transition time stays
/// while the status does.
fn condition(verdict: &Verdict, before: Option<&Condition>) -> Condition {
    let status = if matches!(verdict.outcome, Outcome::Accepted { .. }) {
        "True"
    } else {
        "False"
    };
    let message = match &verdict.outcome {
        Outcome::Accepted { rules, warnings } => {
            accepted_message(verdict.generation, *rules, warnings)
        }
        other => other.message().to_owned(),
    };
    let last_transition_time = match before {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    };
    Condition {
        type_: ACCEPTED.to_owned(),
        status: status.to_owned(),
        reason: verdict.outcome.reason().to_owned(),
        message,
        observed_generation: Some(verdict.generation),
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accepted_message_lists_ten_warnings_and_counts_the_rest() {
        assert_eq!(
            accepted_message(3, 2, &[]),
            "generation 3 is in force (2 rules)"
        );
        let warnings: Vec<String> = (1..=12).map(|n| format!("w{n}")).collect();
        let message = accepted_message(3, 2, &warnings);
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(
            lines.first(),
            Some(&"generation 3 is in force (2 rules), with 12 warning(s):")
        );
        assert_eq!(
            lines[1..11],
            warnings[..10]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..]
        );
        assert_eq!(lines.last(), Some(&"... and 2 more"));
    }
}
