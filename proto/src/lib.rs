//! The gRPC API of the agent, package `guardrails.v1`, generated from
//! `guardrails/v1/agent.proto` (which documents every message and call).
//!
//! Events travel as JSON in the shape of the agent's event schema
//! (`agent/schema/event.v1.schema.json`), so that a consumer sees exactly
//! what `guardrails agent --stdout` prints.
#![deny(missing_docs)]

pub mod codec;
pub mod event;

/// Version 1 of the API.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("guardrails.v1");

    pub use crate::event::{Event, JsonText};

    /// The encoded file descriptors of the API, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/guardrails_v1_descriptor.bin"));
}
