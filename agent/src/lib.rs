//! Runtime Guardrails: the node agent.
//!
//! Data flows one way: kernel programs ([`bpf`]) write records to a ring
//! buffer; the [`events`] reader decodes them into versioned events; the
//! [`enrich`] step adds the process tree and container, [`kube`] the pod and
//! workload, [`rules`] match; the [`outputs`] deliver them. [`daemon`] wires
//! it together, [`api`] serves the gRPC API, [`config`] and [`cli`] are the
//! contracts with the operator.
//! [`container`] tells which container a cgroup belongs to. [`actions`] freeze
//! and isolate containers, with state pinned in the kernel.
#![deny(missing_docs)]

pub mod actions;
pub mod alerts;
pub mod api;
pub mod bpf;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod container;
pub mod daemon;
pub mod enrich;
pub mod events;
pub mod kube;
pub mod logging;
pub mod metrics;
pub mod outputs;
pub mod process;
pub mod rules;
