//! Tokens of the condition language, each with its byte span.
//!
//! Falco's condition language has no context-free token set: `/usr/bin/*`,
//! `proc.name`, `!=` and `in(` overlap, and libsinsp lexes each token class
//! only where its grammar allows that class. The [`Lexer`] is therefore a
//! cursor the [parser](super::parser) drives: it asks for the class the grammar
//! expects next, and a method whose class does not match consumes nothing.

use super::ast::{CmpOp, Span};

/// Whether `c` is skipped between tokens. This is libsinsp's blank set, which
/// has backspace but not vertical tab or form feed.
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x08' | '\r' | '\n')
}

/// POSIX `[:space:]`, which libsinsp uses to end bare values and field
/// arguments and to separate `not` from its operand.
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Whether `c` may appear in an unquoted value or list item.
pub(crate) fn is_bare_value_char(c: char) -> bool {
    !is_space(c) && !matches!(c, '(' | ')' | '"' | '\'' | '=' | ',')
}

/// Whether `c` may appear in an unquoted field argument (`proc.aname[2]`).
pub(crate) fn is_field_arg_char(c: char) -> bool {
    !is_space(c) && !matches!(c, '[' | ']' | '"' | '\'')
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// What a [`Token`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `[A-Za-z][A-Za-z0-9_]*`: a keyword, word operator, macro, list name or
    /// transformer name; the parser tells which from the text.
    Ident,
    /// Two or more identifiers joined by dots: `proc.name`, `evt.arg.flags`.
    Field,
    /// A string in `"` or `'`, holding its unescaped text.
    Quoted(String),
    /// An unquoted value or list item, such as `/etc/` or `*.sh`.
    Bare,
    /// An unquoted field argument, such as `2` in `proc.aname[2]`.
    FieldArg,
    /// A decimal or hexadecimal number, for `<`, `<=`, `>`, `>=`.
    Number,
}

/// A token and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Its bytes in the condition, quotes included.
    pub span: Span,
}

/// A malformed string literal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LexError {
    /// Byte offset of the problem in the condition.
    pub offset: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

/// A cursor over a condition's text.
#[derive(Clone, Debug)]
pub struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// A cursor at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    /// The whole condition.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The cursor's byte offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Moves the cursor back to an offset taken from [`Self::offset`], to undo
    /// a look-ahead.
    pub fn rewind(&mut self, offset: usize) {
        debug_assert!(self.text.is_char_boundary(offset));
        self.pos = offset;
    }

    /// Whether the cursor is at the end of the text.
    pub fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    /// The text of `span`.
    pub fn slice(&self, span: &Span) -> &'a str {
        self.text.get(span.clone()).unwrap_or_default()
    }

    /// The character at the cursor, without consuming it.
    pub fn peek_char(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    /// Consumes `c` if it is at the cursor (no blanks are skipped).
    pub fn eat_char(&mut self, c: char) -> Option<Span> {
        if self.peek_char() == Some(c) {
            let start = self.pos;
            self.pos += c.len_utf8();
            Some(start..self.pos)
        } else {
            None
        }
    }

    /// Skips blanks; says whether there were any.
    pub fn skip_blanks(&mut self) -> bool {
        self.skip_while(is_blank)
    }

    /// Skips POSIX spaces; says whether there were any.
    pub fn skip_spaces(&mut self) -> bool {
        self.skip_while(is_space)
    }

    fn skip_while(&mut self, keep: impl Fn(char) -> bool) -> bool {
        let start = self.pos;
        let rest = &self.text[self.pos..];
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        self.pos > start
    }

    fn take_while(&mut self, kind: TokenKind, keep: impl Fn(char) -> bool) -> Option<Token> {
        let start = self.pos;
        self.skip_while(keep).then(|| self.token(kind, start))
    }

    fn token(&self, kind: TokenKind, start: usize) -> Token {
        Token {
            kind,
            span: start..self.pos,
        }
    }

    /// An identifier or a dotted field name.
    pub fn word(&mut self) -> Option<Token> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let ident_end = |from: usize| -> Option<usize> {
            if !bytes.get(from).copied().is_some_and(is_word_start) {
                return None;
            }
            let len = bytes[from..]
                .iter()
                .position(|&b| !is_word_char(b))
                .unwrap_or(bytes.len() - from);
            Some(from + len)
        };
        let mut end = ident_end(start)?;
        let mut kind = TokenKind::Ident;
        // A dot only joins when an identifier follows it, so `a.b.` is the
        // field `a.b` and a stray dot.
        while bytes.get(end) == Some(&b'.') {
            match ident_end(end + 1) {
                Some(next) => {
                    end = next;
                    kind = TokenKind::Field;
                }
                None => break,
            }
        }
        self.pos = end;
        Some(self.token(kind, start))
    }

    /// A symbolic comparison operator (`=`, `==`, `!=`, `<`, `<=`, `>`, `>=`)
    /// and its span.
    pub fn symbol_op(&mut self) -> Option<(CmpOp, Span)> {
        let rest = &self.text.as_bytes()[self.pos..];
        // Longest spellings first, so `==` is not read as `=` and a value.
        let (op, len) = match rest {
            [b'=', b'=', ..] => (CmpOp::Eq, 2),
            [b'=', ..] => (CmpOp::Eq, 1),
            [b'!', b'=', ..] => (CmpOp::Ne, 2),
            [b'<', b'=', ..] => (CmpOp::Le, 2),
            [b'<', ..] => (CmpOp::Lt, 1),
            [b'>', b'=', ..] => (CmpOp::Ge, 2),
            [b'>', ..] => (CmpOp::Gt, 1),
            _ => return None,
        };
        let start = self.pos;
        self.pos += len;
        Some((op, start..self.pos))
    }

    /// An unquoted value or list item.
    pub fn bare_value(&mut self) -> Option<Token> {
        self.take_while(TokenKind::Bare, is_bare_value_char)
    }

    /// An unquoted field argument.
    pub fn field_arg(&mut self) -> Option<Token> {
        self.take_while(TokenKind::FieldArg, is_field_arg_char)
    }

    /// A number as libsinsp reads one: `0x1F`, `-1`, `+0.25e+10`, `1.`.
    pub fn number(&mut self) -> Option<Token> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let digits = |from: usize, hex: bool| {
            bytes[from.min(bytes.len())..]
                .iter()
                .take_while(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
                .count()
        };
        if bytes.get(start) == Some(&b'0') && matches!(bytes.get(start + 1), Some(b'x' | b'X')) {
            let len = digits(start + 2, true);
            if len > 0 {
                self.pos = start + 2 + len;
                return Some(self.token(TokenKind::Number, start));
            }
        }
        let mut end = start;
        if matches!(bytes.get(end), Some(b'+' | b'-')) {
            end += 1;
        }
        let whole = digits(end, false);
        if whole == 0 {
            return None;
        }
        end += whole;
        if bytes.get(end) == Some(&b'.') {
            end += 1;
            end += digits(end, false);
        }
        // The exponent's sign is required; without it the `e` is not part of
        // the number.
        if matches!(bytes.get(end), Some(b'e' | b'E'))
            && matches!(bytes.get(end + 1), Some(b'+' | b'-'))
        {
            let exp = digits(end + 2, false);
            if exp > 0 {
                end += 2 + exp;
            }
        }
        self.pos = end;
        Some(self.token(TokenKind::Number, start))
    }

    /// A string in `"` or `'`, unescaped.
    ///
    /// As in libsinsp, the string ends at the first quote of its kind that
    /// does not follow a backslash, so a string cannot end in an escaped
    /// backslash (`"a\\"`); `\x5c` spells one there.
    pub fn quoted(&mut self) -> Result<Option<Token>, LexError> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let Some(&quote @ (b'"' | b'\'')) = bytes.get(start) else {
            return Ok(None);
        };
        let mut prev = quote;
        let mut close = None;
        for (i, &b) in bytes.iter().enumerate().skip(start + 1) {
            if b == quote && prev != b'\\' {
                close = Some(i);
                break;
            }
            prev = b;
        }
        let Some(close) = close else {
            return Err(LexError {
                offset: start,
                message: format!(
                    "expected a closing {} to end the string, found end of condition",
                    quote as char
                ),
            });
        };
        let text = unescape(&self.text[start + 1..close], start + 1, quote)?;
        self.pos = close + 1;
        Ok(Some(self.token(TokenKind::Quoted(text), start)))
    }

    /// A short description of what is at `offset`, for "found ..." in error
    /// messages: `end of condition`, `a blank`, or the next lexeme in quotes.
    pub fn describe(&self, offset: usize) -> String {
        let rest = self.text.get(offset..).unwrap_or_default();
        let Some(first) = rest.chars().next() else {
            return "end of condition".to_owned();
        };
        if is_blank(first) || is_space(first) {
            return "a blank".to_owned();
        }
        let len = if matches!(first, '(' | ')' | '[' | ']' | ',') {
            1
        } else if matches!(first, '"' | '\'') {
            rest[1..].find(first).map_or(rest.len(), |close| close + 2)
        } else if first.is_ascii_alphanumeric() || first == '_' {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len())
        } else {
            let after_first = first.len_utf8();
            after_first
                + rest[after_first..]
                    .find(|c: char| {
                        is_blank(c)
                            || is_space(c)
                            || c.is_ascii_alphanumeric()
                            || matches!(c, '(' | ')' | '[' | ']' | ',' | '"' | '\'')
                    })
                    .unwrap_or(rest.len() - after_first)
        };
        quote_snippet(&rest[..len])
    }
}

/// `text` in double quotes, shortened if long, for error messages.
pub(crate) fn quote_snippet(text: &str) -> String {
    const MAX_CHARS: usize = 32;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("\"{}...\"", &text[..cut]),
        None => format!("\"{text}\""),
    }
}

/// Undoes libsinsp's escapes in the text between the quotes. `base` is the
/// text's offset in the condition, for errors.
fn unescape(raw: &str, base: usize, quote: u8) -> Result<String, LexError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let error = |message: String| LexError {
            offset: base + i,
            message,
        };
        // The quote scan never ends a string on a backslash, so one follows.
        let Some(&next) = bytes.get(i + 1) else {
            return Err(error(
                "expected a character after \"\\\", found end of string".to_owned(),
            ));
        };
        match next {
            b'b' => out.push(b'\x08'),
            b'f' => out.push(b'\x0c'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            // libsinsp reads `\ ` as a lone backslash, for rules written
            // before it checked escapes.
            b'\\' | b' ' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'"' | b'\'' if next == quote => out.push(next),
            b'"' | b'\'' => {
                return Err(error(format!(
                    "expected an escape valid in a {}-quoted string, found \"\\{}\"",
                    quote as char, next as char
                )));
            }
            b'x' => {
                let hex = bytes.get(i + 2..i + 4).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                let Some(value) = hex else {
                    return Err(error("expected two hex digits after \"\\x\"".to_owned()));
                };
                out.push(value);
                i += 2;
            }
            _ => {
                let shown: String = raw[i + 1..].chars().take(1).collect();
                return Err(error(format!(
                    "expected an escape such as \"\\n\", \"\\\\\" or \"\\x41\", found \"\\{shown}\""
                )));
            }
        }
        i += 2;
    }
    String::from_utf8(out).map_err(|_| LexError {
        offset: base,
        message: "expected escaped bytes to form UTF-8 text, found invalid UTF-8".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(text: &str) -> Result<Option<Token>, LexError> {
        Lexer::new(text).quoted()
    }

    #[test]
    fn a_word_with_dots_is_a_field_and_stops_at_a_stray_dot() {
        let mut lexer = Lexer::new("evt.arg.flags. x");
        let token = lexer.word();
        assert_eq!(
            token,
            Some(Token {
                kind: TokenKind::Field,
                span: 0..13
            })
        );
        assert_eq!(lexer.peek_char(), Some('.'));
        assert_eq!(
            Lexer::new("incontainer").word().map(|t| t.kind),
            Some(TokenKind::Ident)
        );
        assert_eq!(Lexer::new("_x").word(), None);
        assert_eq!(
            Lexer::new("k8s.ns.name").word().map(|t| t.span),
            Some(0..11)
        );
    }

    #[test]
    fn symbol_operators_prefer_their_longest_spelling() {
        let ops: Vec<_> = ["==", "=", "!=", "<=", "<", ">=", ">"]
            .iter()
            .map(|text| Lexer::new(text).symbol_op())
            .collect();
        assert_eq!(
            ops,
            [
                Some((CmpOp::Eq, 0..2)),
                Some((CmpOp::Eq, 0..1)),
                Some((CmpOp::Ne, 0..2)),
                Some((CmpOp::Le, 0..2)),
                Some((CmpOp::Lt, 0..1)),
                Some((CmpOp::Ge, 0..2)),
                Some((CmpOp::Gt, 0..1)),
            ]
        );
        assert_eq!(Lexer::new("!x").symbol_op(), None);
    }

    #[test]
    fn bare_values_stop_at_blanks_parentheses_quotes_equals_and_commas() {
        for (text, len) in [
            ("/usr/bin/* rest", 10),
            ("10.0.0.0/8)", 10),
            ("a=b", 1),
            ("x,y", 1),
            ("!0.1e+10", 8),
            ("0a!@#456:/\\.;!$%^&*[]{}|", 24),
            ("caf\u{e9}'", 5),
        ] {
            let token = Lexer::new(text).bare_value();
            assert_eq!(token.map(|t| t.span), Some(0..len), "{text}");
        }
        assert_eq!(Lexer::new("(a)").bare_value(), None);
    }

    #[test]
    fn numbers_follow_libsinsp_including_the_signed_exponent() {
        for (text, len) in [
            ("0x1F)", 4),
            ("0XaB00AB", 8),
            ("0x", 1),
            ("-1", 2),
            ("+0.25e+10", 9),
            ("1.", 2),
            ("1e5", 1),
            ("1.2.3", 3),
        ] {
            let token = Lexer::new(text).number();
            assert_eq!(token.map(|t| t.span), Some(0..len), "{text}");
        }
        assert_eq!(Lexer::new("-x").number(), None);
        assert_eq!(Lexer::new("a1").number(), None);
    }

    #[test]
    fn quoted_strings_are_unescaped_and_keep_their_quotes_in_the_span() {
        let token = quoted(r#""a \"b\" \\ \x41\n" rest"#);
        assert_eq!(
            token,
            Ok(Some(Token {
                kind: TokenKind::Quoted("a \"b\" \\ A\n".to_owned()),
                span: 0..19
            }))
        );
        assert_eq!(
            quoted(r"'it\'s'").map(|t| t.map(|t| t.kind)),
            Ok(Some(TokenKind::Quoted("it's".to_owned())))
        );
        assert_eq!(
            quoted(r#"'"'"#).map(|t| t.map(|t| t.kind)),
            Ok(Some(TokenKind::Quoted("\"".to_owned())))
        );
        assert_eq!(
            quoted(r"'\xc3\xa9'").map(|t| t.map(|t| t.kind)),
            Ok(Some(TokenKind::Quoted("\u{e9}".to_owned())))
        );
        assert_eq!(quoted("x"), Ok(None));
    }

    #[test]
    fn an_escaped_space_is_a_backslash_as_in_libsinsp() {
        assert_eq!(
            quoted(r#""a\ b""#).map(|t| t.map(|t| t.kind)),
            Ok(Some(TokenKind::Quoted("a\\b".to_owned())))
        );
    }

    #[test]
    fn a_quote_after_a_backslash_never_ends_a_string() {
        let error = quoted(r#""a\\""#).err();
        assert_eq!(error.map(|e| e.offset), Some(0));
    }

    #[test]
    fn bad_escapes_are_errors_at_their_backslash() {
        for (text, offset, needle) in [
            (r#"'a\"'"#, 2, "'-quoted"),
            (r#""a\'""#, 2, "\"-quoted"),
            (r#""\q""#, 1, "found \"\\q\""),
            (r#""ab\x4""#, 3, "two hex digits"),
            (r#""\xzz""#, 1, "two hex digits"),
            (r#""\xff""#, 1, "utf-8"),
        ] {
            let error = quoted(text).err();
            assert_eq!(error.as_ref().map(|e| e.offset), Some(offset), "{text}");
            let message = error.map(|e| e.message.to_lowercase()).unwrap_or_default();
            assert!(
                message.contains(&needle.to_lowercase()),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn an_unterminated_string_is_an_error_at_its_opening_quote() {
        let error = quoted("'abc").err();
        assert_eq!(
            error,
            Some(LexError {
                offset: 0,
                message: "expected a closing ' to end the string, found end of condition"
                    .to_owned()
            })
        );
    }

    #[test]
    fn field_arguments_allow_parentheses_but_not_brackets_or_blanks() {
        let token = Lexer::new("app.kubernetes.io/name]").field_arg();
        assert_eq!(token.map(|t| t.span), Some(0..22));
        let token = Lexer::new("a(b)] ").field_arg();
        assert_eq!(token.map(|t| t.span), Some(0..4));
        assert_eq!(Lexer::new("]").field_arg(), None);
        assert_eq!(Lexer::new(" x").field_arg(), None);
    }

    #[test]
    fn descriptions_name_the_next_lexeme_or_the_end() {
        let lexer = Lexer::new("a.b ~= x (y");
        assert_eq!(lexer.describe(0), "\"a.b\"");
        assert_eq!(lexer.describe(3), "a blank");
        assert_eq!(lexer.describe(4), "\"~=\"");
        assert_eq!(lexer.describe(9), "\"(\"");
        assert_eq!(lexer.describe(11), "end of condition");
        let long = "x".repeat(40);
        assert_eq!(
            Lexer::new(&long).describe(0),
            format!("\"{}...\"", "x".repeat(32))
        );
    }
}
