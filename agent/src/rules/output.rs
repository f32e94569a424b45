//! Output templates: text with `%field` references, rendered for an event
//! with `<NA>` where the event has no value, as Falco renders them.

use std::{collections::BTreeMap, sync::Arc};

use super::{
    eval::Accessor,
    fields::{self, EventView},
};

/// A compiled output template.
#[derive(Clone, Debug, Default)]
pub struct Output {
    parts: Vec<Part>,
    /// About how long a rendering is, so that most need one allocation.
    rendered_len: usize,
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Field { name: Arc<str>, accessor: Accessor },
}

/// A `%` reference that names no field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputError {
    /// Byte offset of the `%` in the template.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl Output {
    /// Compiles a template.
    pub fn parse(template: &str) -> Result<Self, OutputError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        let mut offset = 0;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (token, consumed) = field_token(after);
            if token.is_empty() {
                // A lone `%` (or `%%`) is text.
                text.push('%');
                let skip = usize::from(after.starts_with('%'));
                rest = &after[skip..];
                offset += at + 1 + skip;
                continue;
            }
            let (name, arg) = split_field(token);
            let field = fields::resolve(name, arg).map_err(|e| OutputError {
                offset: offset + at,
                message: format!("output: {e}"),
            })?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Field {
                name: token.into(),
                accessor: Accessor {
                    field,
                    transformers: Box::new([]),
                },
            });
            rest = &after[consumed..];
            offset += at + 1 + consumed;
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let rendered_len = parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.len(),
                // Command lines and paths are most of a rendering.
                Part::Field { .. } => 64,
            })
            .sum();
        Ok(Self {
            parts,
            rendered_len,
        })
    }

    /// The rendered text and the value of each field it names (`null` for
    /// none).
    pub fn render(&self, view: &EventView<'_>) -> (String, BTreeMap<Arc<str>, serde_json::Value>) {
        let mut out = String::with_capacity(self.rendered_len);
        let mut values = BTreeMap::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field { name, accessor } => match accessor.get(view) {
                    Some(v) => {
                        v.render_into(&mut out);
                        values.insert(name.clone(), v.to_json());
                    }
                    None => {
                        out.push_str("<NA>");
                        values.insert(name.clone(), serde_json::Value::Null);
                    }
                },
            }
        }
        (out, values)
    }

    /// The names of the fields the template uses.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field { name, .. } => Some(&**name),
            Part::Text(_) => None,
        })
    }
}

/// The field reference at the start of `s` (after a `%`), and how many bytes
/// it takes: `proc.name`, `proc.aname[2]`, or `(proc.name)`.
fn field_token(s: &str) -> (&str, usize) {
    if let Some(inner) = s.strip_prefix('(')
        && let Some(end) = inner.find(')')
    {
        return (inner[..end].trim(), end + 2);
    }
    let mut end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(s.len());
    // A sentence's full stop is not part of the name.
    while s[..end].ends_with('.') {
        end -= 1;
    }
    if s[end..].starts_with('[')
        && let Some(close) = s[end..].find(']')
    {
        end += close + 1;
    }
    (&s[..end], end)
}

/// `proc.aname[2]` → (`proc.aname`, `2`).
pub fn split_field(text: &str) -> (&str, Option<&str>) {
    match text.split_once('[') {
        Some((name, rest)) => (name, Some(rest.strip_suffix(']').unwrap_or(rest))),
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_find_fields_with_arguments_and_leave_text_alone() {
        let output =
            Output::parse("Shell (user=%user.name gparent=%proc.aname[2] 100%) at %evt.time.")
                .expect("parses");
        let names: Vec<&str> = output.field_names().collect();
        assert_eq!(names, ["user.name", "proc.aname[2]", "evt.time"]);
        let error = Output::parse("x=%proc.nope").expect_err("unknown field");
        assert_eq!(error.offset, 2);
    }
}
