//! The protobuf codec of every call, with buffers sized for event streams.
//!
//! tonic hands the transport a stream's encoded messages in chunks of at
//! most its yield threshold (32 KiB by default), and HTTP/2 writes each chunk
//! to the socket as frames of at most the peer's frame size. A busy event
//! stream of 3 KiB events then makes a write, and wakes its client, every
//! few events. Larger chunks, with clients that accept larger frames, make
//! the writes as large as the socket's buffer (a sixteenth as many on a
//! busy stream); a stream with nothing more ready still sends what it has
//! at once, so a quiet stream's latency does not change.

use std::marker::PhantomData;

use tonic::codec::BufferSettings;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The initial size of a call's encode and decode buffers (tonic's own).
const BUFFER_BYTES: usize = 8 << 10;

/// How many encoded bytes a stream gathers, while messages are ready, before
/// they are handed to the transport.
pub const CHUNK_BYTES: usize = 512 << 10;

/// The HTTP/2 frame size our clients accept (`SETTINGS_MAX_FRAME_SIZE`), so
/// that a chunk goes out in one frame rather than thirty-two.
const CLIENT_MAX_FRAME_BYTES: u32 = 1 << 20;

/// What the agent may send ahead of a client's reading, per stream and per
/// connection (one stream each).
const CLIENT_WINDOW_BYTES: u32 = 8 << 20;

/// `endpoint` as our clients open it for event streams. HTTP/2's default
/// flow-control windows (64 KiB) let the agent send about twenty events
/// before it must wait for the client to acknowledge them, and its default
/// frames (16 KiB) cut each chunk into a write every few events.
pub fn for_event_streams(endpoint: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    endpoint
        .initial_stream_window_size(CLIENT_WINDOW_BYTES)
        .initial_connection_window_size(CLIENT_WINDOW_BYTES)
        .max_frame_size(CLIENT_MAX_FRAME_BYTES)
}

/// A [`ProstCodec`] whose streams hand the transport chunks of up to
/// [`CHUNK_BYTES`].
#[derive(Debug)]
pub struct Codec<T, U>(PhantomData<fn(T) -> U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, CHUNK_BYTES)
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
