//! Mapping an offset in a condition or output back to the file it came from.
//!
//! A scalar's text differs from the file's bytes: folding joins lines,
//! quoting and escapes add characters, indentation is dropped. What folding,
//! block indentation and quoting leave alone is the sequence of non-blank
//! characters, so an offset is mapped by counting non-blank characters in the
//! text and walking the same number in the file.

use std::sync::Arc;

use super::{Piece, SourceText};
use crate::rules::diag::Position;

impl SourceText {
    /// Text read from one scalar: `text` is its content, which starts at byte
    /// `source_offset` of `source`, the whole text of the file named `file`.
    pub fn single(
        text: impl Into<String>,
        file: Arc<str>,
        source: Arc<str>,
        source_offset: usize,
    ) -> Self {
        Self {
            text: text.into(),
            pieces: vec![Piece {
                start: 0,
                file,
                source,
                source_offset,
            }],
        }
    }

    /// Appends `other` after one space, as Falco joins an appended condition
    /// (or output) to the one it extends.
    pub fn append(&mut self, other: &SourceText) {
        let base = if self.pieces.is_empty() && self.text.is_empty() {
            0
        } else {
            self.text.push(' ');
            self.text.len()
        };
        self.pieces.extend(other.pieces.iter().map(|piece| Piece {
            start: base + piece.start,
            ..piece.clone()
        }));
        self.text.push_str(&other.text);
    }

    /// The file position of the character at byte `offset` of
    /// [`text`](Self::text). An offset on a blank maps to just after the
    /// non-blank character before it; offsets past the end map to the end.
    /// Escapes in double-quoted scalars are approximated. A text with no
    /// pieces has no file: it maps to line 1, column 1 of an unnamed one.
    pub fn position_of(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let Some(piece) = self
            .pieces
            .iter()
            .rev()
            .find(|piece| piece.start <= offset)
            .or_else(|| self.pieces.first())
        else {
            return Position {
                file: Arc::from(""),
                line: 1,
                column: 1,
            };
        };
        let before = self.text.get(piece.start.min(offset)..offset).unwrap_or("");
        let skip = before.chars().filter(|c| !c.is_whitespace()).count();
        let on_token = self
            .text
            .get(offset..)
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| !c.is_whitespace());
        let at = walk(&piece.source, piece.source_offset, skip, on_token);
        line_column(&piece.file, &piece.source, at)
    }
}

/// The byte offset in `source`, from `start`, after `skip` non-blank
/// characters of scalar content (and then any blanks, when `on_token`).
fn walk(source: &str, start: usize, skip: usize, on_token: bool) -> usize {
    let mut start = start.min(source.len());
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    let opener = source.get(..start).and_then(|s| s.chars().next_back());
    let double_quoted = opener == Some('"');
    let single_quoted = opener == Some('\'');
    let rest = source.get(start..).unwrap_or("");
    let mut chars = rest.char_indices().peekable();
    let mut remaining = skip;
    while let Some(&(i, c)) = chars.peek() {
        if remaining == 0 && (!on_token || !c.is_whitespace()) {
            return start + i;
        }
        chars.next();
        if c.is_whitespace() {
            continue;
        }
        let produces = if double_quoted && c == '\\' {
            escape_width(&mut chars)
        } else {
            if single_quoted && c == '\'' && chars.peek().is_some_and(|&(_, n)| n == '\'') {
                chars.next();
            }
            1
        };
        remaining = remaining.saturating_sub(produces);
    }
    source.len()
}

/// Consumes a double-quoted escape after its backslash; returns how many
/// non-blank characters it stands for.
fn escape_width(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> usize {
    let Some((_, kind)) = chars.next() else {
        return 0;
    };
    let digits = match kind {
        // Escapes that stand for blanks, and an escaped line break.
        'n' | 't' | 'r' | ' ' | '\t' | '\n' | 'L' | 'N' | 'P' | '_' => return 0,
        'x' => 2,
        'u' => 4,
        'U' => 8,
        _ => 0,
    };
    for _ in 0..digits {
        if chars.next_if(|&(_, c)| c.is_ascii_hexdigit()).is_none() {
            break;
        }
    }
    1
}

fn line_column(file: &Arc<str>, source: &str, at: usize) -> Position {
    let before = source.get(..at).unwrap_or(source);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    Position {
        file: Arc::clone(file),
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::super::yaml::{self, Value};
    use super::*;

    /// The condition of a one-key YAML mapping, as the loader builds it.
    fn condition(file: &str, source: &str) -> SourceText {
        let root = yaml::parse(source)
            .expect("valid yaml")
            .remove(0)
            .expect("a document");
        let node = root.get("condition").expect("a condition");
        let Value::Scalar(scalar) = &node.value else {
            panic!("not a scalar")
        };
        SourceText::single(
            scalar.text.clone(),
            Arc::from(file),
            Arc::from(source),
            scalar.content,
        )
    }

    fn at(text: &SourceText, word: &str) -> (u32, u32) {
        let offset = text.text.find(word).expect("word in text");
        let position = text.position_of(offset);
        (position.line, position.column)
    }

    #[test]
    fn an_offset_in_a_plain_scalar_maps_to_its_column() {
        let text = condition("f", "condition: a and b\n");
        assert_eq!(at(&text, "b"), (1, 18));
    }

    #[test]
    fn an_offset_in_a_multi_line_plain_scalar_maps_to_its_line() {
        let text = condition("f", "condition: a and\n  b or\n     c\n");
        assert_eq!(text.text, "a and b or c");
        assert_eq!(at(&text, "or"), (2, 5));
        assert_eq!(at(&text, "c"), (3, 6));
    }

    #[test]
    fn an_offset_in_a_folded_scalar_maps_to_its_line_and_column() {
        let text = condition("f", "condition: >\n  spawned_process\n  and   container\n");
        assert_eq!(at(&text, "container"), (3, 9));
    }

    #[test]
    fn an_offset_in_a_literal_scalar_maps_to_its_line_and_column() {
        let text = condition("f", "condition: |-\n    x = 1\n    or y\n");
        assert_eq!(at(&text, "y"), (3, 8));
    }

    #[test]
    fn an_offset_in_a_quoted_scalar_accounts_for_escapes() {
        let text = condition("f", "condition: \"a = \\\"b\\\" and\n  c\"\n");
        assert_eq!(text.text, "a = \"b\" and c");
        assert_eq!(at(&text, "and"), (1, 23));
        assert_eq!(at(&text, "c"), (2, 3));
        let single = condition("f", "condition: 'it''s x'\n");
        assert_eq!(at(&single, "x"), (1, 19));
    }

    #[test]
    fn an_offset_on_a_blank_maps_just_after_the_word_before_it() {
        let text = condition("f", "condition: >\n  ab\n  cd\n");
        assert_eq!(text.text, "ab cd\n");
        let position = text.position_of(2);
        assert_eq!((position.line, position.column), (2, 5));
        let end = text.position_of(100);
        assert_eq!((end.line, end.column), (3, 5));
    }

    #[test]
    fn an_appended_piece_maps_to_its_own_file() {
        let mut text = condition("first", "condition: a and b\n");
        text.append(&condition("second", "\n\ncondition: or c\n"));
        assert_eq!(text.text, "a and b or c");
        assert_eq!(text.pieces[1].start, 8);
        let position = text.position_of(text.text.find('c').expect("c"));
        assert_eq!(&*position.file, "second");
        assert_eq!((position.line, position.column), (3, 15));
        let position = text.position_of(1);
        assert_eq!(&*position.file, "first");
    }

    #[test]
    fn a_text_without_pieces_maps_to_the_start_of_no_file() {
        let text = SourceText {
            text: "x".to_owned(),
            pieces: Vec::new(),
        };
        assert_eq!(text.position_of(0).line, 1);
    }
}
