//! The `guardrails.v1.AgentService` implementation.

use std::{sync::Arc, time::Instant};

use proto::v1::{self, agent_service_server::AgentService};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Request, Response, Status};

use super::{
    filter::{Filter, priority_number},
    hub::{Hub, Start},
    mask::Mask,
    stream::EventStream,
};
use crate::{
    actions::{
        ledger::Contained,
        stage::{Command as ContainCommand, CommandError, UndoReply},
    },
    metrics::Metrics,
    rules::{
        RuleSet,
        reload::{RulesCommand, SetEnabledError},
    },
};

/// What GetStatus reports that does not change.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The node's name.
    pub node: String,
    /// The sensors attached.
    pub sensors: Vec<String>,
    /// The tracepoints their programs are attached to.
    pub tracepoints: Vec<String>,
    /// Syscalls the sensors report that no attached program sees.
    pub unobserved_syscalls: Vec<String>,
    /// When the agent started.
    pub started: Instant,
}

/// The service's state: shared handles only.
#[derive(Debug, Clone)]
pub struct AgentApi {
    /// The events.
    pub hub: Arc<Hub>,
    /// Node, sensors, start.
    pub identity: Arc<Identity>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The rules in force.
    pub rules: watch::Receiver<Arc<RuleSet>>,
    /// Requests to the rules task.
    pub commands: mpsc::Sender<RulesCommand>,
    /// Streams served at once.
    pub max_clients: usize,
    /// Requests to the containment step.
    pub containment: mpsc::Sender<ContainCommand>,
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<v1::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unix".to_owned(), |a| a.to_string());
        if self.hub.clients().len() >= self.max_clients {
            return Err(Status::resource_exhausted(format!(
                "{} event streams are open, the most this agent serves (api.max_clients)",
                self.max_clients
            )));
        }
        let request = request.into_inner();
        let filter = Filter::new(request.filter.unwrap_or_default())
            .map_err(|e| Status::invalid_argument(format!("filter: {e}")))?;
        let start = match request.resume_after {
            Some(cursor) => Start::After {
                run_id: cursor.run_id,
                sequence: cursor.sequence,
            },
            None if request.replay_only => Start::After {
                run_id: String::new(),
                sequence: 0,
            },
            None => Start::Live,
        };
        let mask = Mask::new(&request.fields);
        let subscription = self.hub.subscribe(filter, &start, peer.clone());
        tracing::info!(
            client = subscription.stats.id,
            %peer,
            replay = subscription.replay.len(),
            "event stream opened"
        );
        Ok(Response::new(EventStream::new(
            subscription,
            mask,
            request.replay_only,
            self.hub.run_id().into(),
        )))
    }

    async fn get_status(
        &self,
        _request: Request<v1::GetStatusRequest>,
    ) -> Result<Response<v1::GetStatusResponse>, Status> {
        let totals = self.metrics.totals();
        let (loaded, enabled) = {
            let rules = self.rules.borrow();
            (rules.rules().len(), rules.enabled())
        };
        let clients = self
            .hub
            .clients()
            .iter()
            .map(|c| v1::ClientStatus {
                id: c.id,
                peer: c.peer.clone(),
                sent: c.sent.load(std::sync::atomic::Ordering::Relaxed),
                lost: c.lost.load(std::sync::atomic::Ordering::Relaxed),
            })
            .collect();
        Ok(Response::new(v1::GetStatusResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            node: self.identity.node.clone(),
            run_id: self.hub.run_id().to_owned(),
            uptime_seconds: self.identity.started.elapsed().as_secs(),
            sensors: self.identity.sensors.clone(),
            tracepoints: self.identity.tracepoints.clone(),
            unobserved_syscalls: self.identity.unobserved_syscalls.clone(),
            rules_loaded: u32::try_from(loaded).unwrap_or(u32::MAX),
            rules_enabled: u32::try_from(enabled).unwrap_or(u32::MAX),
            events_seen: totals.events,
            violations: totals.violations,
            lost_in_kernel: totals.lost_in_kernel,
            lost_decode: totals.lost_decode,
            lost_queue: totals.lost_queue,
            last_sequence: self.hub.last_sequence(),
            clients,
        }))
    }

    async fn list_rules(
        &self,
        _request: Request<v1::ListRulesRequest>,
    ) -> Result<Response<v1::ListRulesResponse>, Status> {
        let rules = self.rules.borrow();
        let rules = rules.rules().iter().map(rule_message).collect();
        Ok(Response::new(v1::ListRulesResponse { rules }))
    }

    async fn set_rule_enabled(
        &self,
        request: Request<v1::SetRuleEnabledRequest>,
    ) -> Result<Response<v1::SetRuleEnabledResponse>, Status> {
        let request = request.into_inner();
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(RulesCommand::SetEnabled {
                name: request.name.clone(),
                enabled: request.enabled,
                reply,
            })
            .await
            .map_err(|_| Status::unavailable("the rules task is not running"))?;
        match outcome.await {
            Ok(Ok(())) => {}
            Ok(Err(SetEnabledError::NotFound(name))) => {
                return Err(Status::not_found(format!(
                    "no rule named {name:?} is loaded"
                )));
            }
            Ok(Err(e)) => return Err(Status::internal(e.to_string())),
            Err(_) => return Err(Status::unavailable("the rules task stopped")),
        }
        let rules = self.rules.borrow();
        let rule = rules
            .rules()
            .iter()
            .find(|r| r.name == request.name)
            .map(rule_message);
        Ok(Response::new(v1::SetRuleEnabledResponse { rule }))
    }

    async fn list_contained(
        &self,
        _request: Request<v1::ListContainedRequest>,
    ) -> Result<Response<v1::ListContainedResponse>, Status> {
        let contained = self.contained().await?;
        Ok(Response::new(v1::ListContainedResponse {
            contained: contained.iter().map(contained_message).collect(),
        }))
    }

    async fn thaw(
        &self,
        request: Request<v1::ContainedTarget>,
    ) -> Result<Response<v1::ContainedResponse>, Status> {
        let cgroup_id = self.resolve(request.into_inner()).await?;
        self.undo(ContainCommand::Thaw, cgroup_id).await
    }

    async fn lift(
        &self,
        request: Request<v1::ContainedTarget>,
    ) -> Result<Response<v1::ContainedResponse>, Status> {
        let cgroup_id = self.resolve(request.into_inner()).await?;
        self.undo(ContainCommand::Lift, cgroup_id).await
    }
}

impl AgentApi {
    async fn contained(&self) -> Result<Vec<Contained>, Status> {
        let (reply, answer) = oneshot::channel();
        self.containment
            .send(ContainCommand::List(reply))
            .await
            .map_err(|_| Status::unavailable("the containment step is not running"))?;
        answer
            .await
            .map_err(|_| Status::unavailable("the containment step stopped"))?
            .map_err(command_status)
    }

    /// The cgroup id a target names: its own, or that of the one contained
    /// container whose id starts with the given one.
    async fn resolve(&self, target: v1::ContainedTarget) -> Result<u64, Status> {
        if target.cgroup_id != 0 {
            return Ok(target.cgroup_id);
        }
        let wanted = target.container_id.trim();
        if wanted.len() < 12 {
            return Err(Status::invalid_argument(
                "name the container by cgroup_id or by at least 12 characters of its id",
            ));
        }
        let contained = self.contained().await?;
        let mut matching = contained
            .iter()
            .filter(|c| c.container_id.starts_with(wanted));
        match (matching.next(), matching.next()) {
            (Some(one), None) => Ok(one.cgroup_id),
            (None, _) => Err(Status::not_found(format!(
                "no contained container's id starts with {wanted}"
            ))),
            (Some(_), Some(_)) => Err(Status::invalid_argument(format!(
                "several contained containers' ids start with {wanted}"
            ))),
        }
    }

    async fn undo(
        &self,
        command: fn(u64, UndoReply) -> ContainCommand,
        cgroup_id: u64,
    ) -> Result<Response<v1::ContainedResponse>, Status> {
        let (reply, answer) = oneshot::channel();
        self.containment
            .send(command(cgroup_id, reply))
            .await
            .map_err(|_| Status::unavailable("the containment step is not running"))?;
        let after = answer
            .await
            .map_err(|_| Status::unavailable("the containment step stopped"))?
            .map_err(command_status)?;
        Ok(Response::new(v1::ContainedResponse {
            contained: after.as_ref().map(contained_message),
        }))
    }
}

fn command_status(error: CommandError) -> Status {
    match error {
        CommandError::NotContained(..) => Status::not_found(error.to_string()),
        CommandError::Unavailable => Status::failed_precondition(error.to_string()),
        CommandError::Failed(_) => Status::internal(error.to_string()),
    }
}

fn contained_message(c: &Contained) -> v1::Contained {
    let by = |a: &crate::actions::ledger::Action| v1::ContainedBy {
        rule: a.rule.clone(),
        since_unix_ns: a.since_unix_ns,
    };
    v1::Contained {
        cgroup_id: c.cgroup_id,
        cgroup_dir: c.cgroup_dir.display().to_string(),
        container_id: c.container_id.clone(),
        frozen: c.frozen.as_ref().map(by),
        isolated: c.isolated.as_ref().map(by),
        dropped_ingress: c.drops.map_or(0, |d| d.ingress),
        dropped_egress: c.drops.map_or(0, |d| d.egress),
    }
}

fn rule_message(rule: &crate::rules::compile::CompiledRule) -> v1::Rule {
    v1::Rule {
        name: rule.name.clone(),
        priority: priority_number(rule.priority).into(),
        tags: rule.tags.to_vec(),
        enabled: rule.enabled,
        description: rule.desc.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message as _;

    use super::*;
    use crate::{
        api::stream::{self, EventStream},
        events::{
            Event, EventKind,
            event::{ContainerInfo, Process, Violation, WallTime},
            kubernetes::{Kubernetes, ObjectRef, PodStatus},
        },
    };

    fn rich_event() -> Event {
        let mut event = Event::new(
            EventKind::Violation,
            WallTime(
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(1_764_000_000, 123),
            ),
            u64::MAX - 7,
            "n1".into(),
        );
        event.process = Some(Arc::new(Process {
            pid: 7,
            comm: "sh".into(),
            exe: Some("/bin/sh".into()),
            args: Some(["sh", "-c", "ünïcode \"quoted\""].into_iter().collect()),
            ..Process::default()
        }));
        event.container = Some(Arc::new(ContainerInfo {
            kind: "container".into(),
            id: Some("ab".repeat(32)),
            ..ContainerInfo::default()
        }));
        event.kubernetes = Some(Arc::new(Kubernetes {
            status: PodStatus::Resolved,
            pod: Some("web-1".into()),
            namespace: Some("shop".into()),
            workload: Some(ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
            }),
            ..Kubernetes::unresolved()
        }));
        event.violation = Some(Box::new(Violation {
            rule: "r".into(),
            priority: crate::rules::Priority::Critical,
            tags: ["t".to_owned()].into(),
            output: "out".into(),
            fields: [("proc.name".into(), serde_json::json!("sh"))].into(),
            event_type: "execve".into(),
            blast_radius: None,
        }));
        event
    }

    /// What `streams` streams each receive, on the wire, when `event` is
    /// published as the run's first.
    async fn sent(event: &Event, streams: usize) -> Vec<v1::Event> {
        use futures::StreamExt as _;
        let hub = stream::tests::hub();
        let mut streams: Vec<EventStream> =
            (0..streams).map(|_| stream::tests::stream(&hub)).collect();
        drop(hub.publish(vec![event.clone()]));
        let mut received = Vec::new();
        for stream in &mut streams {
            let message = stream
                .next()
                .await
                .expect("a message")
                .expect("not an error");
            let bytes = message.encode_to_vec();
            let decoded = v1::StreamEventsResponse::decode(bytes.as_slice()).expect("decodes");
            let Some(v1::stream_events_response::Message::Event(message)) = decoded.message else {
                panic!("an event message");
            };
            received.push(message);
        }
        received
    }

    #[tokio::test]
    async fn an_event_survives_the_wire_both_ways_unchanged() {
        let original = rich_event();
        // One stream writes the JSON in its own buffer; several share one
        // written for all.
        for streams in [1, 3] {
            for message in sent(&original, streams).await {
                assert_eq!(message.kind, "violation");
                assert_eq!(
                    message.cursor,
                    Some(v1::Cursor {
                        run_id: "run-1".into(),
                        sequence: 1
                    })
                );
                let back: Event =
                    serde_json::from_slice(message.json.as_bytes()).expect("the schema's JSON");
                assert_eq!(back, original);
            }
        }
    }
}
