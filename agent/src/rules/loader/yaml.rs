//! A YAML tree that remembers where every node is: the line and column the
//! rule loader reports, and the byte offset where a scalar's content starts,
//! which [`SourceText`](super::SourceText) needs to map condition offsets back
//! into the file.

use std::collections::HashMap;

use yaml_rust2::{
    Event,
    parser::Parser,
    scanner::{Marker, TScalarStyle},
};

/// Where a node starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mark {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Byte offset in the file text.
    pub offset: usize,
}

/// One node with where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Node {
    /// What it is.
    pub value: Value,
    /// Where it starts (for a block scalar, its first content character;
    /// for a quoted scalar, its opening quote).
    pub at: Mark,
}

/// The kinds of node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    /// `~`, `null` or nothing at all.
    Null,
    /// A string (every scalar is read as its text; callers decide whether
    /// `true` or `42` is a bool or a number, as yaml-cpp does).
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order (duplicate keys are kept; lookups take the
    /// first).
    Map(Vec<(Node, Node)>),
}

/// A scalar's text and where its content starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Scalar {
    /// The text after folding, unquoting and unescaping.
    pub text: String,
    /// Byte offset in the file text of the content's first character: after
    /// the opening quote, or the first non-blank after a block header line.
    pub content: usize,
}

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(scalar) => Some(&scalar.text),
            _ => None,
        }
    }

    /// The value of the first entry whose key is the scalar `key`, if this is
    /// a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// What kind of node this is, for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Scalar(_) => "a scalar",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }
}

/// The parser stopped: the file is not valid YAML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SyntaxError {
    /// Where the parser stopped.
    pub at: Mark,
    /// The parser's description.
    pub message: String,
}

/// Alias expansion copies the anchored node; without a bound, a few lines of
/// nested aliases ("billion laughs") would exhaust memory.
const MAX_NODES: usize = 1_000_000;

/// Parses every document of `text`; an empty document is `None`.
pub(super) fn parse(text: &str) -> Result<Vec<Option<Node>>, SyntaxError> {
    let lines = LineIndex::new(text);
    let mut builder = Builder {
        text,
        lines: &lines,
        stack: Vec::new(),
        anchors: HashMap::new(),
        documents: Vec::new(),
        current: None,
        nodes: 0,
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, marker) = parser.next_token().map_err(|error| SyntaxError {
            at: lines.mark(text, error.marker()),
            message: error.info().to_owned(),
        })?;
        if event == Event::StreamEnd {
            break;
        }
        builder.event(event, &marker)?;
    }
    Ok(builder.documents)
}

/// Byte offsets where lines start, to turn the parser's line and character
/// column into a byte offset.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    fn mark(&self, text: &str, marker: &Marker) -> Mark {
        // The parser counts lines from 1 and columns from 0, in characters.
        let line = marker.line().max(1);
        let start = self
            .starts
            .get(line - 1)
            .copied()
            .unwrap_or(text.len())
            .min(text.len());
        let rest = text.get(start..).unwrap_or("");
        let within = rest
            .char_indices()
            .nth(marker.col())
            .map_or(rest.len(), |(i, _)| i);
        Mark {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
            offset: start + within,
        }
    }
}

enum Frame {
    Seq {
        at: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        at: Mark,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder<'a> {
    text: &'a str,
    lines: &'a LineIndex,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    documents: Vec<Option<Node>>,
    current: Option<Node>,
    nodes: usize,
}

impl Builder<'_> {
    fn event(&mut self, event: Event, marker: &Marker) -> Result<(), SyntaxError> {
        let at = self.lines.mark(self.text, marker);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart => self.current = None,
            Event::DocumentEnd => {
                let root = self.current.take().filter(|node| node.value != Value::Null);
                self.documents.push(root);
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id) else {
                    return Err(SyntaxError {
                        at,
                        message: "alias to an unknown anchor".to_owned(),
                    });
                };
                self.nodes += size;
                if self.nodes > MAX_NODES {
                    return Err(SyntaxError {
                        at,
                        message: format!("aliases expand to more than {MAX_NODES} nodes"),
                    });
                }
                let node = Node {
                    value: node.value.clone(),
                    at,
                };
                self.complete(node, 0, *size);
            }
            Event::Scalar(text, style, anchor, _tag) => {
                self.nodes += 1;
                let value = if style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Value::Null
                } else {
                    let content = self.content_start(at.offset, style, &text);
                    Value::Scalar(Scalar { text, content })
                };
                self.complete(Node { value, at }, anchor, 1);
            }
            Event::SequenceStart(anchor, _tag) => self.stack.push(Frame::Seq {
                at,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _tag) => self.stack.push(Frame::Map {
                at,
                anchor,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                self.nodes += 1;
                match self.stack.pop() {
                    Some(Frame::Seq { at, anchor, items }) => {
                        let size = 1 + items.iter().map(count).sum::<usize>();
                        let value = Value::Seq(items);
                        self.complete(Node { value, at }, anchor, size);
                    }
                    Some(Frame::Map {
                        at,
                        anchor,
                        entries,
                        ..
                    }) => {
                        let size = 1 + entries
                            .iter()
                            .map(|(k, v)| count(k) + count(v))
                            .sum::<usize>();
                        // The parser marks a block mapping oddly; it starts
                        // where its first key does.
                        let at = entries.first().map_or(at, |(key, _)| key.at);
                        let value = Value::Map(entries);
                        self.complete(Node { value, at }, anchor, size);
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Hands a finished node to its parent, or makes it the document.
    fn complete(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => self.current = Some(node),
        }
    }

    /// Where a scalar's content starts, given where its token starts.
    fn content_start(&self, at: usize, style: TScalarStyle, text: &str) -> usize {
        let source = self.text.as_bytes();
        match style {
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => match source.get(at) {
                Some(b'"' | b'\'') => at + 1,
                _ => at,
            },
            TScalarStyle::Literal | TScalarStyle::Folded => {
                // The parser marks a block scalar at its first content
                // character; should it mark the `>`/`|` indicator instead,
                // the header line (`>-`, `|2`, maybe a comment) ends at the
                // first line break and the content is below it.
                if !matches!(source.get(at), Some(b'>' | b'|')) {
                    return at;
                }
                let Some(newline) = source
                    .get(at..)
                    .and_then(|s| s.iter().position(|&b| b == b'\n'))
                else {
                    return self.text.len();
                };
                let body = at + newline + 1;
                if text.starts_with(|c: char| !c.is_whitespace()) {
                    source
                        .get(body..)
                        .and_then(|s| s.iter().position(|b| !b.is_ascii_whitespace()))
                        .map_or(body, |skip| body + skip)
                } else {
                    body
                }
            }
            TScalarStyle::Plain => at,
        }
    }
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Null | Value::Scalar(_) => 1,
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(text: &str) -> Node {
        let mut documents = parse(text).expect("valid yaml");
        assert_eq!(documents.len(), 1);
        documents.remove(0).expect("a document")
    }

    fn scalar(node: &Node) -> &Scalar {
        match &node.value {
            Value::Scalar(scalar) => scalar,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn a_mapping_key_and_value_know_their_line_and_column() {
        let root = only("- rule: x\n  condition: a and b\n");
        let Value::Seq(items) = &root.value else {
            panic!("not a sequence")
        };
        let Value::Map(entries) = &items[0].value else {
            panic!("not a mapping")
        };
        let (key, value) = &entries[1];
        assert_eq!((key.at.line, key.at.column), (2, 3));
        assert_eq!((value.at.line, value.at.column), (2, 14));
        assert_eq!(scalar(value).text, "a and b");
    }

    #[test]
    fn a_plain_scalar_content_starts_at_its_first_character() {
        let text = "condition: a and b\n";
        let root = only(text);
        let value = root.get("condition").expect("condition");
        assert_eq!(&text[scalar(value).content..], "a and b\n");
    }

    #[test]
    fn a_quoted_scalar_content_starts_after_the_quote() {
        let text = "a: \"x y\"\nb: 'z'\n";
        let root = only(text);
        let a = scalar(root.get("a").expect("a"));
        let b = scalar(root.get("b").expect("b"));
        assert_eq!(&text[a.content..a.content + 3], "x y");
        assert_eq!(&text[b.content..b.content + 1], "z");
    }

    #[test]
    fn a_block_scalar_content_starts_on_the_line_after_its_header() {
        let text = "a: >-  # folded\n    first line\n    second\nb: |\n  lit\n";
        let root = only(text);
        let a = scalar(root.get("a").expect("a"));
        assert_eq!(a.text, "first line second");
        assert!(text[a.content..].starts_with("first line"));
        let b = scalar(root.get("b").expect("b"));
        assert!(text[b.content..].starts_with("lit"));
    }

    #[test]
    fn columns_count_characters_and_offsets_count_bytes() {
        let text = "é: ünï\n";
        let root = only(text);
        let value = root.get("é").expect("key");
        assert_eq!(value.at.column, 4);
        assert_eq!(&text[value.at.offset..], "ünï\n");
    }

    #[test]
    fn empty_values_and_tildes_are_null() {
        let root = only("a:\nb: ~\nc: ''\n");
        assert_eq!(root.get("a").map(|n| &n.value), Some(&Value::Null));
        assert_eq!(root.get("b").map(|n| &n.value), Some(&Value::Null));
        assert_eq!(root.get("c").and_then(Node::as_str), Some(""));
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let root = only("a: &x [1, 2]\nb: *x\n");
        let b = root.get("b").expect("b");
        assert!(matches!(&b.value, Value::Seq(items) if items.len() == 2));
        assert_eq!(b.at.line, 2);
    }

    #[test]
    fn several_documents_are_read_and_an_empty_one_is_none() {
        let documents = parse("- a\n---\n---\n- b\n").expect("valid yaml");
        assert_eq!(documents.len(), 3);
        assert!(documents[1].is_none());
    }

    #[test]
    fn a_syntax_error_says_where_the_parser_stopped() {
        let error = parse("- a: [1, 2\n- b\n").expect_err("invalid");
        assert!(error.at.line >= 1);
        assert!(!error.message.is_empty());
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let error = parse(&text).expect_err("too big");
        assert!(
            error.message.contains("aliases expand"),
            "{}",
            error.message
        );
    }
}
