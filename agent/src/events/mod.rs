//! From kernel records to events: the reader drains the ring buffer, the
//! decoder turns records into the versioned [`Event`] schema.

pub mod action;
pub mod clock;
pub mod decode;
pub mod event;
mod in_place;
pub mod json;
pub mod kubernetes;
mod prefetch;
pub mod reader;
pub mod syscall;

pub use event::{Event, EventKind, SCHEMA_VERSION};
