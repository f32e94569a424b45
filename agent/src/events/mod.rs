//! From kernel records to events: the reader drains the ring buffer, the
//! decoder turns records into the versioned [`Event`] schema.

pub mod action;
pub mod clock;
pub mod decode;
pub mod event;
pub mod json;
pub mod kubernetes;
pub mod reader;
pub mod syscall;

pub use event::{Event, EventKind, SCHEMA_VERSION};
