//! `guardrails.v1.Event`, written by hand instead of generated, so that an
//! event's JSON crosses the API without being copied on either side.
//!
//! The agent writes an event's JSON once and shares it between the replay
//! buffer and every stream; a generated message would need its own `String`
//! per stream (an allocation and a copy of a few KiB per event sent). A
//! client decodes the field as a slice of the frame it received rather than
//! a copy, and checks it as UTF-8 when it reads it as text: a consumer that
//! parses it (`serde_json::from_slice`) checks it while parsing, one that
//! only forwards or counts it does not pay for a check it does not need.
//!
//! On the wire it is the message the `.proto` declares; clients generated
//! from it (grpcurl, Python) see no difference.

use std::{borrow::Cow, str::Utf8Error};

use bytes::{Buf, BufMut, Bytes};
use prost::{
    DecodeError, Message,
    encoding::{
        DecodeContext, WireType, bytes as length_delimited, encode_key, encode_varint,
        encoded_len_varint, key_len, message, skip_field, string,
    },
};

use crate::v1::Cursor;

const CURSOR: u32 = 1;
const KIND: u32 = 2;
const JSON: u32 = 3;

/// One event, with its cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Event {
    /// Its position, to resume after it.
    pub cursor: Option<Cursor>,
    /// The event's kind, as in its JSON.
    pub kind: Cow<'static, str>,
    /// The whole event (or the fields asked for) as JSON, exactly as the
    /// agent's event schema defines it.
    pub json: JsonText,
}

/// The JSON of an event: text the agent wrote, shared rather than copied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JsonText(Bytes);

impl JsonText {
    /// Text its maker wrote as UTF-8, shared with it.
    pub fn from_shared(text: Bytes) -> Self {
        Self(text)
    }

    /// The text as bytes, unchecked.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, if it is UTF-8 (what the agent sends always is).
    pub fn to_str(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for JsonText {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl From<&str> for JsonText {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl Message for Event {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(cursor) = &self.cursor {
            message::encode(CURSOR, cursor, buf);
        }
        if !self.kind.is_empty() {
            encode_text(KIND, self.kind.as_bytes(), buf);
        }
        if !self.json.is_empty() {
            encode_text(JSON, self.json.as_bytes(), buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            CURSOR => message::merge(
                wire_type,
                self.cursor.get_or_insert_with(Cursor::default),
                buf,
                ctx,
            )
            .map_err(|mut error| {
                error.push("Event", "cursor");
                error
            }),
            KIND => {
                let mut kind = String::new();
                string::merge(wire_type, &mut kind, buf, ctx).map_err(|mut error| {
                    error.push("Event", "kind");
                    error
                })?;
                self.kind = Cow::Owned(kind);
                Ok(())
            }
            // A slice of the received frame (`Buf::copy_to_bytes` on the
            // transport's buffer), not a copy.
            JSON => length_delimited::merge(wire_type, &mut self.json.0, buf, ctx).map_err(
                |mut error| {
                    error.push("Event", "json");
                    error
                },
            ),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        self.cursor
            .as_ref()
            .map_or(0, |cursor| message::encoded_len(CURSOR, cursor))
            + text_len(KIND, self.kind.len())
            + text_len(JSON, self.json.len())
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

fn encode_text(tag: u32, text: &[u8], buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(text.len() as u64, buf);
    buf.put_slice(text);
}

/// The encoded length of a string field holding `len` bytes; an empty one
/// is not written.
fn text_len(tag: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(len as u64) + len
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    /// What `Event` puts on the wire must be what the `.proto` declares: a
    /// message generated from the same fields decodes it, and it decodes
    /// what such a message encodes.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Generated {
        #[prost(message, optional, tag = "1")]
        cursor: Option<Cursor>,
        #[prost(string, tag = "2")]
        kind: String,
        #[prost(string, tag = "3")]
        json: String,
    }

    fn event() -> Event {
        Event {
            cursor: Some(Cursor {
                run_id: "run-1".into(),
                sequence: 300,
            }),
            kind: "process_exec".into(),
            json: r#"{"kind":"process_exec","comm":"ünïcode"}"#.into(),
        }
    }

    #[test]
    fn it_encodes_and_decodes_as_the_generated_message_would() {
        let ours = event();
        let generated = Generated {
            cursor: ours.cursor.clone(),
            kind: ours.kind.to_string(),
            json: ours.json.to_str().expect("utf-8").to_owned(),
        };
        let bytes = ours.encode_to_vec();
        assert_eq!(bytes, generated.encode_to_vec());
        assert_eq!(ours.encoded_len(), bytes.len());
        assert_eq!(Generated::decode(&*bytes).expect("decodes"), generated);
        assert_eq!(Event::decode(&*bytes).expect("decodes"), ours);
    }

    #[test]
    fn empty_fields_are_left_out_and_unknown_ones_skipped() {
        assert!(Event::default().encode_to_vec().is_empty());
        let mut bytes = event().encode_to_vec();
        // Field 9, a varint: a later version of the message.
        bytes.extend_from_slice(&[9 << 3, 42]);
        assert_eq!(Event::decode(&*bytes).expect("decodes"), event());
    }

    #[test]
    fn decoded_json_is_a_slice_of_the_frame_and_checked_when_read() {
        let frame = Bytes::from(event().encode_to_vec());
        let decoded = Event::decode(frame.clone()).expect("decodes");
        let start = frame.as_ptr() as usize;
        let json = decoded.json.as_bytes().as_ptr() as usize;
        assert!(
            (start..start + frame.len()).contains(&json),
            "the JSON was copied out of the frame"
        );

        // Field 3, length-delimited, two bytes that are not UTF-8.
        let bytes: &[u8] = &[3 << 3 | 2, 2, 0xc3, 0x28];
        let decoded = Event::decode(bytes).expect("the frame decodes");
        assert!(decoded.json.to_str().is_err());
    }
}
