//! The gRPC API of the agent, package `guardrails.v1`.
//!
//! Empty until the API lands: its messages will carry the event schema
//! published in `agent/schema/event.v1.schema.json`.
#![deny(missing_docs)]
