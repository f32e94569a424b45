//! Generates the Rust of `guardrails/v1/agent.proto` with a pure-Rust
//! protobuf compiler (protox), so that building needs no `protoc`, and keeps
//! the encoded descriptors for server reflection.

use std::{env, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "guardrails/v1/agent.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("guardrails_v1_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::Codec")
        // Written by hand (`src/event.rs`) so that its JSON is shared, not copied.
        .extern_path(".guardrails.v1.Event", "crate::event::Event")
        .compile_fds(descriptors)?;
    Ok(())
}
