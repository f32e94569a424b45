//! A stream's field mask: the dotted JSON paths of the event a client wants
//! (`process.pid`, `kubernetes.pod`); `schema_version`, `kind` and `time`
//! are always kept so that every message is still an event.

use serde_json::{Map, Value};

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

    /// The parts of `event` the mask names.
    pub fn apply(&self, event: &Value) -> Value {
        if self.is_empty() {
            return event.clone();
        }
        let mut out = Value::Object(Map::new());
        for path in &self.paths {
            copy(event, &mut out, path);
        }
        out
    }
}

fn copy(from: &Value, to: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        *to = from.clone();
        return;
    };
    let (Some(value), Value::Object(target)) = (from.get(first), to) else {
        return;
    };
    if rest.is_empty() {
        target.insert(first.clone(), value.clone());
        return;
    }
    if !value.is_object() {
        return;
    }
    let slot = target
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    copy(value, slot, rest);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_mask_keeps_the_named_paths_and_the_event_identity() {
        let event = json!({"schema_version": 1, "kind": "process_exec", "time": "t", "node": "n",
            "process": {"pid": 7, "comm": "sh", "args": ["sh"]},
            "kubernetes": {"status": "resolved", "pod": "web"}});
        let mask = Mask::new(&[
            "process.pid".into(),
            "kubernetes.pod".into(),
            "missing.x".into(),
        ]);
        assert_eq!(
            mask.apply(&event),
            json!({"schema_version": 1, "kind": "process_exec", "time": "t",
                "process": {"pid": 7}, "kubernetes": {"pod": "web"}})
        );
        assert_eq!(Mask::new(&[]).apply(&event), event);
    }
}
