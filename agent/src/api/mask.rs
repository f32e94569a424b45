//! A stream's field mask: the dotted JSON paths of the event a client wants
//! (`process.pid`, `kubernetes.pod`); `schema_version`, `kind` and `time`
//! are always kept so that every message is still an event.
//!
//! The mask cuts the event's JSON, already written once for every stream,
//! rather than the event: the kept values are copied as they were written,
//! in the event's order, and nothing of the rest is decoded.

use std::borrow::Cow;

use serde::{
    Deserialize,
    de::{Deserializer as _, MapAccess, Visitor},
};
use serde_json::value::RawValue;

/// Paths always kept.
const ALWAYS: &[&str] = &["schema_version", "kind", "time"];

/// A compiled field mask; empty keeps everything.
#[derive(Clone, Debug, Default)]
pub struct Mask {
    paths: Vec<Vec<String>>,
}

impl Mask {
    /// The mask of `fields`.
    pub fn new(fields: &[String]) -> Self {
        if fields.is_empty() {
            return Self::default();
        }
        let paths = fields
            .iter()
            .map(String::as_str)
            .chain(ALWAYS.iter().copied())
            .map(|f| f.split('.').map(str::to_owned).collect())
            .collect();
        Self { paths }
    }

    /// Whether the mask keeps everything.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The parts of the JSON object `event` the mask names, as JSON. Text
    /// that is not a JSON object (never an event's) gives `{}`.
    pub fn apply(&self, event: &str) -> String {
        if self.is_empty() {
            return event.to_owned();
        }
        let paths: Vec<&[String]> = self.paths.iter().map(Vec::as_slice).collect();
        let mut out = String::with_capacity(256);
        if pick(event, &paths, &mut out).is_err() {
            out.clear();
            out.push_str("{}");
        }
        out
    }
}

/// Writes the members of the object `json` that `paths` name (a path whose
/// rest is empty keeps the whole value; a longer one descends into objects).
fn pick(json: &str, paths: &[&[String]], out: &mut String) -> Result<(), serde_json::Error> {
    let members = object_members(json)?;
    out.push('{');
    let mut first = true;
    for (Key(key), value) in members {
        let wanted: Vec<&[String]> = paths
            .iter()
            .filter_map(|p| p.split_first())
            .filter(|(head, _)| head.as_str() == key.as_ref())
            .map(|(_, rest)| rest)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let whole = wanted.iter().any(|rest| rest.is_empty());
        let value = value.get();
        if !whole && !value.starts_with('{') {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        // Keys of the event schema never need escaping, but a label key in
        // a map might: write it as JSON writes strings.
        out.push_str(&serde_json::to_string(key.as_ref())?);
        out.push(':');
        if whole {
            out.push_str(value);
        } else {
            pick(value, &wanted, out)?;
        }
    }
    out.push('}');
    Ok(())
}

/// A member's name, borrowed from the JSON unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The members of a JSON object, in order, each value left as written.
fn object_members(json: &str) -> Result<Vec<(Key<'_>, &RawValue)>, serde_json::Error> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(Key<'de>, &'de RawValue)>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
            while let Some(member) = map.next_entry()? {
                members.push(member);
            }
            Ok(members)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    deserializer.deserialize_map(Members)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn apply(mask: &Mask, event: &Value) -> Value {
        serde_json::from_str(&mask.apply(&event.to_string())).expect("the mask writes JSON")
    }

    #[test]
    fn a_mask_keeps_the_named_paths_and_the_event_identity() {
        let event = json!({"schema_version": 1, "kind": "process_exec", "time": "t", "node": "n",
            "process": {"pid": 7, "comm": "sh", "args": ["sh"]},
            "kubernetes": {"status": "resolved", "pod": "web", "labels": {"app.kubernetes.io/name": "x\"y"}}});
        let mask = Mask::new(&[
            "process.pid".into(),
            "kubernetes.pod".into(),
            "kubernetes.labels".into(),
            "missing.x".into(),
            "node.x".into(),
        ]);
        assert_eq!(
            apply(&mask, &event),
            json!({"schema_version": 1, "kind": "process_exec", "time": "t",
                "process": {"pid": 7},
                "kubernetes": {"pod": "web", "labels": {"app.kubernetes.io/name": "x\"y"}}})
        );
        assert_eq!(apply(&Mask::new(&[]), &event), event);
    }

    #[test]
    fn a_path_and_its_parent_keep_the_parent_whole() {
        let event = json!({"schema_version": 1, "kind": "k", "time": "t",
            "process": {"pid": 7, "comm": "sh"}});
        let mask = Mask::new(&["process.pid".into(), "process".into()]);
        assert_eq!(apply(&mask, &event), event);
    }

    #[test]
    fn text_that_is_not_an_object_gives_an_empty_object() {
        let mask = Mask::new(&["process.pid".into()]);
        assert_eq!(mask.apply("[1, 2]"), "{}");
        assert_eq!(mask.apply("{\"kind\": "), "{}");
    }
}
