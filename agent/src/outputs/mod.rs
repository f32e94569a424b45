//! Where events go once decoded. This release writes JSON lines to stdout;
//! the gRPC stream and alert outputs join here.

pub mod stdout;
