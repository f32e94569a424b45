//! A stream's field mask: the dotted JSON paths of the event a client wants
//! (`process.pid`, `kubernetes.pod`); `schema_version`, `kind` and `time`
//! are always kept so that every message is still an event.
//!
//! The mask is applied while the event is written: members it does not
//! name are skipped without being visited, so a stream that asks for four
//! fields pays for four fields, not for the whole event. A path that goes
//! on below a value that is not an object keeps that value whole.

use std::collections::BTreeMap;

use proto::v1::JsonText;
use serde::{
    Serialize, Serializer,
    ser::{Impossible, SerializeMap, SerializeStruct},
};

use super::hub::Sequenced;

/// Paths always kept.
const ALWAYS: &[&str] = &["schema_version", "kind", "time"];

/// A compiled field mask; empty keeps everything.
#[derive(Clone, Debug, Default)]
pub struct Mask {
    root: Option<Node>,
}

/// The members kept at one level; a node with no children keeps its value
/// whole.
#[derive(Clone, Debug, Default)]
struct Node {
    children: BTreeMap<String, Node>,
}

impl Node {
    fn keeps_whole(&self) -> bool {
        self.children.is_empty()
    }
}

impl Mask {
    /// The mask of `fields`.
    pub fn new(fields: &[String]) -> Self {
        if fields.is_empty() {
            return Self::default();
        }
        let mut root = Node::default();
        // Shorter paths first, so that a parent named whole stays whole.
        let mut paths: Vec<Vec<&str>> = fields
            .iter()
            .map(String::as_str)
            .chain(ALWAYS.iter().copied())
            .map(|f| f.split('.').collect())
            .collect();
        paths.sort_by_key(Vec::len);
        for path in paths {
            let mut node = &mut root;
            for part in path {
                if node.children.get(part).is_some_and(Node::keeps_whole) {
                    // A shorter path already keeps this member whole.
                    break;
                }
                node = node.children.entry(part.to_owned()).or_default();
            }
        }
        Self { root: Some(root) }
    }

    /// Whether the mask keeps everything.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// The event's JSON as the mask cuts it; for an empty mask, the JSON
    /// the event's streams share.
    pub fn apply(&self, item: &Sequenced) -> JsonText {
        let Some(root) = &self.root else {
            return item.json();
        };
        serde_json::to_string(&Masked {
            value: &item.event,
            node: root,
        })
        .unwrap_or_else(|error| {
            tracing::error!(%error, "cannot write a masked event");
            "{}".to_owned()
        })
        .into()
    }
}

/// A value written through a mask node.
struct Masked<'a, T: ?Sized> {
    value: &'a T,
    node: &'a Node,
}

impl<T: Serialize + ?Sized> Serialize for Masked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.node.keeps_whole() {
            self.value.serialize(serializer)
        } else {
            self.value.serialize(Filter {
                inner: serializer,
                node: self.node,
            })
        }
    }
}

/// Writes objects (structs and maps) with only the members the node names;
/// any other value is written whole.
struct Filter<'a, S> {
    inner: S,
    node: &'a Node,
}

/// An object being written through a mask node.
struct FilteredObject<'a, M> {
    map: M,
    node: &'a Node,
    /// The node of the map key just seen, if the mask names it.
    pending: Option<&'a Node>,
}

impl<'a, M: SerializeMap> SerializeStruct for FilteredObject<'a, M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        match self.node.children.get(key) {
            Some(node) => self.map.serialize_entry(key, &Masked { value, node }),
            None => Ok(()),
        }
    }

    fn end(self) -> Result<M::Ok, M::Error> {
        self.map.end()
    }
}

impl<'a, M: SerializeMap> SerializeMap for FilteredObject<'a, M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), M::Error> {
        self.pending = key
            .serialize(KeyName)
            .ok()
            .and_then(|name| self.node.children.get(&name));
        if self.pending.is_some() {
            self.map.serialize_key(key)?;
        }
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), M::Error> {
        match self.pending.take() {
            Some(node) => self.map.serialize_value(&Masked { value, node }),
            None => Ok(()),
        }
    }

    fn end(self) -> Result<M::Ok, M::Error> {
        self.map.end()
    }
}

/// The text of a map key that is a string.
struct KeyName;

/// Any key that is not a string; such keys are never kept.
#[derive(Debug)]
struct NotAString;

impl std::fmt::Display for NotAString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a string")
    }
}

impl std::error::Error for NotAString {}

impl serde::ser::Error for NotAString {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self
    }
}

macro_rules! not_a_string {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, NotAString> { Err(NotAString) })*
    };
}

impl Serializer for KeyName {
    type Ok = String;
    type Error = NotAString;
    type SerializeSeq = Impossible<String, NotAString>;
    type SerializeTuple = Impossible<String, NotAString>;
    type SerializeTupleStruct = Impossible<String, NotAString>;
    type SerializeTupleVariant = Impossible<String, NotAString>;
    type SerializeMap = Impossible<String, NotAString>;
    type SerializeStruct = Impossible<String, NotAString>;
    type SerializeStructVariant = Impossible<String, NotAString>;

    fn serialize_str(self, v: &str) -> Result<String, NotAString> {
        Ok(v.to_owned())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, NotAString> {
        Ok(variant.to_owned())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, NotAString> {
        value.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, NotAString> {
        Err(NotAString)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, NotAString> {
        Err(NotAString)
    }

    not_a_string! {
        serialize_bool(bool) -> String;
        serialize_i8(i8) -> String;
        serialize_i16(i16) -> String;
        serialize_i32(i32) -> String;
        serialize_i64(i64) -> String;
        serialize_u8(u8) -> String;
        serialize_u16(u16) -> String;
        serialize_u32(u32) -> String;
        serialize_u64(u64) -> String;
        serialize_f32(f32) -> String;
        serialize_f64(f64) -> String;
        serialize_char(char) -> String;
        serialize_bytes(&[u8]) -> String;
        serialize_none() -> String;
        serialize_unit() -> String;
        serialize_unit_struct(&'static str) -> String;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<$ret, S::Error> {
            self.inner.$method($($arg),*)
        })*
    };
}

impl<'a, S: Serializer> Serializer for Filter<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = S::SerializeSeq;
    type SerializeTuple = S::SerializeTuple;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = FilteredObject<'a, S::SerializeMap>;
    type SerializeStruct = FilteredObject<'a, S::SerializeMap>;
    type SerializeStructVariant = S::SerializeStructVariant;

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.serialize_map(None)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        // The member count is not known until the mask has been applied.
        Ok(FilteredObject {
            map: self.inner.serialize_map(None)?,
            node: self.node,
            pending: None,
        })
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_struct(name, value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    forward! {
        serialize_bool(v: bool) -> S::Ok;
        serialize_i8(v: i8) -> S::Ok;
        serialize_i16(v: i16) -> S::Ok;
        serialize_i32(v: i32) -> S::Ok;
        serialize_i64(v: i64) -> S::Ok;
        serialize_u8(v: u8) -> S::Ok;
        serialize_u16(v: u16) -> S::Ok;
        serialize_u32(v: u32) -> S::Ok;
        serialize_u64(v: u64) -> S::Ok;
        serialize_f32(v: f32) -> S::Ok;
        serialize_f64(v: f64) -> S::Ok;
        serialize_char(v: char) -> S::Ok;
        serialize_str(v: &str) -> S::Ok;
        serialize_bytes(v: &[u8]) -> S::Ok;
        serialize_none() -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(name: &'static str) -> S::Ok;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> S::Ok;
        serialize_seq(len: Option<usize>) -> S::SerializeSeq;
        serialize_tuple(len: usize) -> S::SerializeTuple;
        serialize_tuple_struct(name: &'static str, len: usize) -> S::SerializeTupleStruct;
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> S::SerializeTupleVariant;
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> S::SerializeStructVariant;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::events::{
        Event, EventKind,
        event::{Ancestor, Process, WallTime},
        kubernetes::{Kubernetes, PodStatus},
    };

    fn event() -> Event {
        let mut event = Event::new(
            EventKind::ProcessExec,
            WallTime(std::time::SystemTime::UNIX_EPOCH),
            5,
            "n1".into(),
        );
        event.process = Some(Arc::new(Process {
            pid: 7,
            comm: "sh".into(),
            args: Some(["sh", "-c", "x"].into_iter().collect()),
            ancestors: Arc::from([Ancestor::new(1, "init", "/sbin/init", &["init"])]),
            ..Process::default()
        }));
        event.kubernetes = Some(Arc::new(Kubernetes {
            status: PodStatus::Resolved,
            pod: Some("web".into()),
            labels: [("app.kubernetes.io/name".to_owned(), "x\"y".to_owned())].into(),
            ..Kubernetes::unresolved()
        }));
        event
    }

    fn apply(mask: &Mask, event: &Event) -> Value {
        let item = Sequenced::new(1, event.clone());
        // Another stream wrote the whole event first, keeping its sections'
        // JSON for reuse: the mask must still cut them.
        item.json();
        serde_json::from_slice(mask.apply(&item).as_bytes()).expect("the mask writes JSON")
    }

    #[test]
    fn a_mask_keeps_the_named_paths_and_the_event_identity() {
        let mask = Mask::new(&[
            "process.pid".into(),
            "process.args".into(),
            "kubernetes.pod".into(),
            "kubernetes.labels.app.kubernetes.io/name".into(),
            "missing.x".into(),
        ]);
        assert_eq!(
            apply(&mask, &event()),
            json!({"schema_version": 1, "kind": "process_exec", "time": "1970-01-01T00:00:00.000000000Z",
                "process": {"pid": 7, "args": ["sh", "-c", "x"]},
                // A dotted path cannot name a key that holds dots.
                "kubernetes": {"pod": "web", "labels": {}}})
        );
        let labels = Mask::new(&["kubernetes.labels".into()]);
        assert_eq!(
            apply(&labels, &event())["kubernetes"],
            json!({"labels": {"app.kubernetes.io/name": "x\"y"}})
        );
        let whole = serde_json::to_value(event()).expect("JSON");
        assert_eq!(apply(&Mask::new(&[]), &event()), whole);
    }

    #[test]
    fn a_path_and_its_parent_keep_the_parent_whole() {
        let whole = serde_json::to_value(event()).expect("JSON");
        for fields in [["process.pid", "process"], ["process", "process.pid"]] {
            let fields: Vec<String> = fields.iter().map(|&f| f.to_owned()).collect();
            let masked = apply(&Mask::new(&fields), &event());
            assert_eq!(masked["process"], whole["process"], "{fields:?}");
        }
    }

    #[test]
    fn a_path_below_a_value_that_is_not_an_object_keeps_the_value() {
        let masked = apply(
            &Mask::new(&["process.comm.x".into(), "process.ancestors.pid".into()]),
            &event(),
        );
        assert_eq!(masked["process"]["comm"], "sh");
        assert_eq!(masked["process"]["ancestors"][0]["comm"], "init");
    }
}
