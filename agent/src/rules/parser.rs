//! The condition parser: Falco's condition language, as libsinsp's filter
//! parser accepts it, into a [syntax tree](super::ast).
//!
//! # Grammar
//!
//! ```text
//! condition   = or_expr ;
//! or_expr     = and_expr { "or" ( blank and_expr | "(" or_expr ")" ) } ;
//! and_expr    = not_expr { "and" ( blank not_expr | "(" or_expr ")" ) } ;
//! not_expr    = { "not" space } ( "not(" or_expr ")" | check ) ;
//! check       = "(" or_expr ")"
//!             | operand test
//!             | identifier ;                        (* a macro *)
//! operand     = field | transformer "(" operand ")" ;
//! field       = field_name [ "[" ( quoted | field_arg ) "]" ] ;
//! test        = "exists"
//!             | num_op ( right_field | number )
//!             | str_op ( right_field | quoted | bare )
//!             | list_op ( list | right_field | identifier ) ;  (* identifier: a list *)
//! right_field = "val(" field ")" | transformer "(" operand ")" ;
//! list        = "(" [ item { "," item } ] ")" ;
//! item        = quoted | bare ;
//!
//! num_op      = "<=" | "<" | ">=" | ">" ;
//! str_op      = "==" | "=" | "!="
//!             | ( "contains" | "icontains" | "bcontains" | "startswith"
//!               | "bstartswith" | "endswith" | "glob" | "iglob" | "regex" ) blank ;
//! list_op     = "in" | "intersects" | "pmatch" ;
//! transformer = "tolower" | "toupper" | "b64" | "basename" | "len" ;
//!
//! identifier  = [A-Za-z] [A-Za-z0-9_]* ;
//! field_name  = identifier ( "." identifier )+ ;
//! field_arg   = [^][ "' \t\n\v\f\r]+ ;
//! bare        = [^() "' \t\n\v\f\r =,]+ ;
//! number      = 0[xX][0-9a-fA-F]+ | [+-]?[0-9]+ [.]?[0-9]* ([eE][+-][0-9]+)? ;
//! quoted      = '"' chars '"' | "'" chars "'" ;  (* escapes: \b \f \n \r \t \\ \/ \" \' \xHH *)
//! blank       = [ \t\b\r\n]+ ;                    (* \b: backspace; between any tokens *)
//! space       = [ \t\n\v\f\r]+ ;
//! ```
//!
//! No blank may stand between a transformer's name and its `(`, between a
//! field and its `[`, or inside the brackets. Keywords and operators are
//! case-sensitive. Parentheses and transformers nest at most [`MAX_DEPTH`]
//! levels deep.
//!
//! As in libsinsp:
//! - each `not` toggles, so `not not a` is `a`; parentheses start afresh, so
//!   `not (not a)` is a double negation;
//! - `or(` takes only the parenthesized group as its operand, so
//!   `a or(b) and c` is an error while `a or (b) and c` is not;
//! - a numeric operator takes only a number, and a string operator never a list;
//! - a list operator's bare identifier names a list; it is kept as an unquoted
//!   [`Value::Literal`], while a list's own items are [`Value::List`].
//!
//! Stricter than libsinsp, which accepts these:
//! - word operators end at a word boundary (libsinsp reads `x.y inlist` as
//!   `x.y in list` and `x.y existsand m` as `x.y exists and m`);
//! - `and`, `or` and `not` are never macro names;
//! - a transformer takes one field or transformer, and no `[arg]` after it.
//!
//! Not supported yet (an error says so): the operator modifiers `oneof`,
//! `anyof`, `allof` and the transformers `join`, `concat` and `getopt`.

use std::fmt::Write as _;

use super::ast::{CmpOp, Compare, Expr, FieldRef, Literal, Operand, Span, Transformer, Value};
use super::lexer::{self, LexError, Lexer, Token, TokenKind};

/// How deep parentheses and transformers may nest; deeper conditions are
/// rejected rather than risk the stack (each level costs about 11 KiB of stack
/// unoptimized). libsinsp's own budget of 100 parser calls allows about 19
/// levels of parentheses, so no condition Falco accepts comes near this.
pub const MAX_DEPTH: usize = 100;

/// Why a condition does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Byte offset in the condition where the problem is.
    pub offset: usize,
    /// What was expected and what was found, lowercase.
    pub message: String,
}

impl From<LexError> for ParseError {
    fn from(error: LexError) -> Self {
        Self {
            offset: error.offset,
            message: error.message,
        }
    }
}

/// Parses a condition.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        lex: Lexer::new(text),
        depth: 0,
    };
    let (expr, _) = parser.or_expr()?;
    parser.lex.skip_blanks();
    if !parser.lex.at_end() {
        return Err(parser.expected("\"and\", \"or\" or the end of the condition"));
    }
    Ok(expr)
}

/// Word operators, with the operator each spells.
const WORD_OPS: [CmpOp; 12] = [
    CmpOp::Contains,
    CmpOp::IContains,
    CmpOp::BContains,
    CmpOp::StartsWith,
    CmpOp::BStartsWith,
    CmpOp::EndsWith,
    CmpOp::Glob,
    CmpOp::IGlob,
    CmpOp::Regex,
    CmpOp::In,
    CmpOp::Intersects,
    CmpOp::PMatch,
];

fn word_op(word: &str) -> Option<CmpOp> {
    WORD_OPS.into_iter().find(|op| op.as_str() == word)
}

fn is_numeric(op: CmpOp) -> bool {
    matches!(op, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge)
}

/// What follows a check's left side.
enum Operator {
    /// `exists`, ending at this offset.
    Exists(usize),
    /// A binary operator and its span.
    Binary(CmpOp, Span),
}

/// What `name(` calls.
enum Call {
    Transformer(Transformer),
    Val,
}

/// An expression and the text it covers, parentheses included.
type Spanned = (Expr, Span);

struct Parser<'a> {
    lex: Lexer<'a>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn error_at(&self, offset: usize, message: String) -> ParseError {
        ParseError { offset, message }
    }

    /// "expected {what}, found {what is at the cursor}".
    fn expected(&self, what: &str) -> ParseError {
        let offset = self.lex.offset();
        self.error_at(
            offset,
            format!("expected {what}, found {}", self.lex.describe(offset)),
        )
    }

    fn enter(&mut self, offset: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                offset,
                format!(
                    "expected at most {MAX_DEPTH} levels of parentheses and transformers, found more"
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Consumes the identifier `word` if it is next.
    fn keyword(&mut self, word: &str) -> Option<Span> {
        let start = self.lex.offset();
        match self.lex.word() {
            Some(token)
                if token.kind == TokenKind::Ident && self.lex.slice(&token.span) == word =>
            {
                Some(token.span)
            }
            _ => {
                self.lex.rewind(start);
                None
            }
        }
    }

    fn or_expr(&mut self) -> Result<Spanned, ParseError> {
        let (first, span) = self.and_expr()?;
        let start = span.start;
        let mut end = span.end;
        let mut operands = vec![first];
        let mut tight = false;
        loop {
            self.lex.skip_blanks();
            if self.keyword("or").is_none() {
                break;
            }
            let (operand, span);
            ((operand, span), tight) = self.logical_operand("or", Self::and_expr)?;
            end = span.end;
            operands.push(operand);
        }
        if tight {
            let at = self.lex.offset();
            if self.keyword("and").is_some() {
                return Err(self.error_at(
                    at,
                    "expected \"or\" after an \"or(...)\" group, found \"and\" \
                     (write \"or (\" with a blank to make the group part of the \"and\")"
                        .to_owned(),
                ));
            }
        }
        Ok(match operands.len() {
            1 => (operands.swap_remove(0), start..end),
            _ => (Expr::Or(operands), start..end),
        })
    }

    fn and_expr(&mut self) -> Result<Spanned, ParseError> {
        let (first, span) = self.not_expr()?;
        let start = span.start;
        let mut end = span.end;
        let mut operands = vec![first];
        loop {
            self.lex.skip_blanks();
            if self.keyword("and").is_none() {
                break;
            }
            let ((operand, span), _) = self.logical_operand("and", Self::not_expr)?;
            end = span.end;
            operands.push(operand);
        }
        Ok(match operands.len() {
            1 => (operands.swap_remove(0), start..end),
            _ => (Expr::And(operands), start..end),
        })
    }

    /// What follows `and` or `or`: a blank and `next`, or directly a
    /// parenthesized group (then says so).
    fn logical_operand(
        &mut self,
        name: &str,
        next: fn(&mut Self) -> Result<Spanned, ParseError>,
    ) -> Result<(Spanned, bool), ParseError> {
        if let Some(open) = self.lex.eat_char('(') {
            return Ok((self.group(open)?, true));
        }
        if !self.lex.skip_blanks() {
            return Err(self.expected(&format!("a blank or \"(\" after \"{name}\"")));
        }
        Ok((next(self)?, false))
    }

    fn not_expr(&mut self) -> Result<Spanned, ParseError> {
        self.lex.skip_blanks();
        let mut first_not = None;
        let mut negate = false;
        let (child, span) = loop {
            let before = self.lex.offset();
            if let Some(keyword) = self.keyword("not") {
                if self.lex.skip_spaces() {
                    negate = !negate;
                    first_not.get_or_insert(keyword.start);
                    continue;
                }
                if let Some(open) = self.lex.eat_char('(') {
                    negate = !negate;
                    first_not.get_or_insert(keyword.start);
                    break self.group(open)?;
                }
                self.lex.rewind(before);
            }
            break self.check()?;
        };
        if !negate {
            return Ok((child, span));
        }
        let start = first_not.unwrap_or(span.start);
        let span = start..span.end;
        Ok((Expr::Not(Box::new(child), span.clone()), span))
    }

    /// The rest of a parenthesized condition after its `(`.
    fn group(&mut self, open: Span) -> Result<Spanned, ParseError> {
        self.enter(open.start)?;
        self.lex.skip_blanks();
        let (expr, _) = self.or_expr()?;
        self.lex.skip_blanks();
        let Some(close) = self.lex.eat_char(')') else {
            if self.lex.at_end() {
                return Err(self.expected("\")\" to close the \"(\""));
            }
            return Err(self.expected("\"and\", \"or\" or \")\""));
        };
        self.leave();
        Ok((expr, open.start..close.end))
    }

    fn check(&mut self) -> Result<Spanned, ParseError> {
        self.lex.skip_blanks();
        if let Some(open) = self.lex.eat_char('(') {
            return self.group(open);
        }
        const WHAT: &str = "a condition (a field check, a macro name, \"not\" or \"(\")";
        let Some(token) = self.lex.word() else {
            return Err(self.expected(WHAT));
        };
        let left = match token.kind {
            TokenKind::Field => Operand::Field(self.field_rest(token)?),
            _ => {
                let name = self.lex.slice(&token.span);
                if self.lex.peek_char() == Some('(') {
                    match self.call(&token)? {
                        Call::Transformer(transformer) => self.transformer(transformer, token)?,
                        Call::Val => {
                            return Err(self.error_at(
                                token.span.start,
                                "expected a field or a transformer on the left of a check, \
                                 found \"val(\" (it belongs on the right)"
                                    .to_owned(),
                            ));
                        }
                    }
                } else if matches!(name, "and" | "or") {
                    self.lex.rewind(token.span.start);
                    return Err(self.expected(WHAT));
                } else if name == "not" {
                    self.lex.skip_blanks();
                    return Err(self.expected(&format!("{WHAT} after \"not\"")));
                } else {
                    let span = token.span;
                    return Ok((Expr::Macro(name.to_owned(), span.clone()), span));
                }
            }
        };
        self.test(left)
    }

    /// Which call `name(` is, or why it is none.
    fn call(&self, name: &Token) -> Result<Call, ParseError> {
        let text = self.lex.slice(&name.span);
        if let Some(transformer) = Transformer::from_name(text) {
            return Ok(Call::Transformer(transformer));
        }
        let message = match text {
            "val" => return Ok(Call::Val),
            "join" | "concat" | "getopt" => {
                format!(
                    "expected a supported transformer, found \"{text}\", which is not supported yet"
                )
            }
            _ => format!(
                "expected a transformer (tolower, toupper, b64, basename, len) or \"val\", found \"{text}(\""
            ),
        };
        Err(self.error_at(name.span.start, message))
    }

    /// A field's optional `[arg]` after its name.
    fn field_rest(&mut self, name: Token) -> Result<FieldRef, ParseError> {
        let mut field = FieldRef {
            name: self.lex.slice(&name.span).to_owned(),
            arg: None,
            span: name.span,
        };
        if self.lex.eat_char('[').is_none() {
            return Ok(field);
        }
        let arg = match self.lex.quoted()? {
            Some(Token {
                kind: TokenKind::Quoted(text),
                ..
            }) => text,
            _ => match self.lex.field_arg() {
                Some(token) => self.lex.slice(&token.span).to_owned(),
                None => return Err(self.expected("a field argument after \"[\"")),
            },
        };
        let Some(close) = self.lex.eat_char(']') else {
            return Err(self.expected("\"]\" after the field argument"));
        };
        field.arg = Some(arg);
        field.span.end = close.end;
        Ok(field)
    }

    /// The rest of `name(operand)` after its name.
    fn transformer(
        &mut self,
        transformer: Transformer,
        name: Token,
    ) -> Result<Operand, ParseError> {
        let start = name.span.start;
        self.enter(start)?;
        let _ = self.lex.eat_char('(');
        let name = self.lex.slice(&name.span);
        self.lex.skip_blanks();
        let what = format!("a field or a transformer inside \"{name}(\"");
        let Some(token) = self.lex.word() else {
            return Err(self.expected(&what));
        };
        let inner = match token.kind {
            TokenKind::Field => Operand::Field(self.field_rest(token)?),
            _ if self.lex.peek_char() == Some('(') => match self.call(&token)? {
                Call::Transformer(inner) => self.transformer(inner, token)?,
                Call::Val => {
                    self.lex.rewind(token.span.start);
                    return Err(self.expected(&what));
                }
            },
            _ => {
                self.lex.rewind(token.span.start);
                return Err(self.expected(&what));
            }
        };
        self.lex.skip_blanks();
        let Some(close) = self.lex.eat_char(')') else {
            return Err(self.expected(&format!("\")\" to close \"{name}(\"")));
        };
        self.no_bracket_after(name)?;
        self.leave();
        Ok(Operand::Transform(
            transformer,
            Box::new(inner),
            start..close.end,
        ))
    }

    fn no_bracket_after(&self, name: &str) -> Result<(), ParseError> {
        if self.lex.peek_char() == Some('[') {
            return Err(self.expected(&format!("no \"[...]\" argument after \"{name}(...)\"")));
        }
        Ok(())
    }

    /// The operator and right side after the left operand.
    fn test(&mut self, left: Operand) -> Result<Spanned, ParseError> {
        let start = left.span().start;
        self.lex.skip_blanks();
        let op_start = self.lex.offset();
        let found = match self.lex.symbol_op() {
            Some((op, span)) => Some(Operator::Binary(op, span)),
            None => self
                .lex
                .word()
                .filter(|token| token.kind == TokenKind::Ident)
                .and_then(|token| match self.lex.slice(&token.span) {
                    "exists" => Some(Operator::Exists(token.span.end)),
                    text => word_op(text).map(|op| Operator::Binary(op, token.span)),
                }),
        };
        let (op, op_span) = match found {
            Some(Operator::Exists(end)) => {
                let span = start..end;
                return Ok((Expr::Exists(left, span.clone()), span));
            }
            Some(Operator::Binary(op, span)) => (op, span),
            None => {
                self.lex.rewind(op_start);
                let left_text = lexer::quote_snippet(self.lex.slice(&left.span()));
                return Err(self.expected(&format!(
                    "a comparison operator or \"exists\" after {left_text}"
                )));
            }
        };
        let op_text = self.lex.slice(&op_span);
        let (right, end) = if is_numeric(op) {
            self.number_value(op_text)?
        } else if op.takes_list() {
            self.list_value(op_text)?
        } else {
            // Word operators need a blank after them; symbols may touch the value.
            let had_blank = self.lex.skip_blanks();
            if !had_blank
                && op_text
                    .as_bytes()
                    .first()
                    .is_some_and(u8::is_ascii_alphabetic)
            {
                return Err(self.expected(&format!("a blank after \"{op_text}\"")));
            }
            self.string_value(op_text, had_blank)?
        };
        let span = start..end;
        let compare = Compare {
            left,
            op,
            right,
            span: span.clone(),
        };
        Ok((Expr::Compare(compare), span))
    }

    /// `val(field)` or a transformer on the right side, if one is next.
    fn right_field(&mut self) -> Result<Option<(Value, usize)>, ParseError> {
        let before = self.lex.offset();
        let token = match self.lex.word() {
            Some(token) if token.kind == TokenKind::Ident && self.lex.peek_char() == Some('(') => {
                token
            }
            _ => {
                self.lex.rewind(before);
                return Ok(None);
            }
        };
        match self.call(&token)? {
            Call::Transformer(transformer) => {
                let operand = self.transformer(transformer, token)?;
                let end = operand.span().end;
                Ok(Some((Value::Field(operand), end)))
            }
            Call::Val => {
                let _ = self.lex.eat_char('(');
                self.lex.skip_blanks();
                let at = self.lex.offset();
                let field = match self.lex.word() {
                    Some(token) if token.kind == TokenKind::Field => self.field_rest(token)?,
                    _ => {
                        self.lex.rewind(at);
                        return Err(self.expected("a field inside \"val(\""));
                    }
                };
                self.lex.skip_blanks();
                let Some(close) = self.lex.eat_char(')') else {
                    return Err(self.expected("\")\" to close \"val(\""));
                };
                self.no_bracket_after("val")?;
                Ok(Some((Value::Field(Operand::Field(field)), close.end)))
            }
        }
    }

    fn literal(&self, token: Token) -> Literal {
        match token.kind {
            TokenKind::Quoted(text) => Literal {
                text,
                quoted: true,
                span: token.span,
            },
            _ => Literal {
                text: self.lex.slice(&token.span).to_owned(),
                quoted: false,
                span: token.span,
            },
        }
    }

    fn number_value(&mut self, op: &str) -> Result<(Value, usize), ParseError> {
        self.lex.skip_blanks();
        if let Some(right) = self.right_field()? {
            return Ok(right);
        }
        let Some(token) = self.lex.number() else {
            return Err(self.expected(&format!("a number after \"{op}\"")));
        };
        let end = token.span.end;
        Ok((Value::Literal(self.literal(token)), end))
    }

    fn string_value(&mut self, op: &str, had_blank: bool) -> Result<(Value, usize), ParseError> {
        if had_blank {
            self.reject_modifier()?;
        }
        if let Some(right) = self.right_field()? {
            return Ok(right);
        }
        let token = match self.lex.quoted()? {
            Some(token) => token,
            None => match self.lex.bare_value() {
                Some(token) => token,
                None => return Err(self.expected(&format!("a value after \"{op}\""))),
            },
        };
        let end = token.span.end;
        Ok((Value::Literal(self.literal(token)), end))
    }

    /// libsinsp reads `= oneof (a, b)` as an operator modifier when a list
    /// or list name follows; elsewhere `oneof` is a plain value.
    fn reject_modifier(&mut self) -> Result<(), ParseError> {
        let before = self.lex.offset();
        let modifier = self
            .lex
            .word()
            .map(|token| self.lex.slice(&token.span))
            .filter(|word| matches!(*word, "oneof" | "anyof" | "allof"));
        let is_modifier = modifier.is_some() && self.lex.skip_blanks() && {
            let rest = &self.lex.text()[self.lex.offset()..];
            let list_follows = rest.starts_with('(')
                || rest.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
            let keyword_follows = ["and", "or", "not"].iter().any(|keyword| {
                rest.strip_prefix(keyword).is_some_and(|after| {
                    !after
                        .as_bytes()
                        .first()
                        .is_some_and(u8::is_ascii_alphanumeric)
                })
            });
            list_follows && !keyword_follows
        };
        self.lex.rewind(before);
        match modifier {
            Some(word) if is_modifier => Err(self.error_at(
                before,
                format!("expected a value, found the operator modifier \"{word}\", which is not supported yet"),
            )),
            _ => Ok(()),
        }
    }

    fn list_value(&mut self, op: &str) -> Result<(Value, usize), ParseError> {
        self.lex.skip_blanks();
        if let Some(open) = self.lex.eat_char('(') {
            return self.list(open);
        }
        if let Some(right) = self.right_field()? {
            return Ok(right);
        }
        let before = self.lex.offset();
        match self.lex.word() {
            Some(token) if token.kind == TokenKind::Ident => {
                let end = token.span.end;
                Ok((Value::Literal(self.literal(token)), end))
            }
            _ => {
                self.lex.rewind(before);
                Err(self.expected(&format!("a list or a list name after \"{op}\"")))
            }
        }
    }

    /// The rest of `(a, "b", c)` after its `(`.
    fn list(&mut self, open: Span) -> Result<(Value, usize), ParseError> {
        let mut items = Vec::new();
        self.lex.skip_blanks();
        if let Some(close) = self.lex.eat_char(')') {
            return Ok((Value::List(items, open.start..close.end), close.end));
        }
        let close = loop {
            self.lex.skip_blanks();
            let token = match self.lex.quoted()? {
                Some(token) => token,
                None => match self.lex.bare_value() {
                    Some(token) => token,
                    None if items.is_empty() => return Err(self.expected("a list item or \")\"")),
                    None => return Err(self.expected("a list item after \",\"")),
                },
            };
            items.push(self.literal(token));
            self.lex.skip_blanks();
            if self.lex.eat_char(',').is_some() {
                continue;
            }
            match self.lex.eat_char(')') {
                Some(close) => break close,
                None => return Err(self.expected("\",\" or \")\" after a list item")),
            }
        };
        Ok((Value::List(items, open.start..close.end), close.end))
    }
}

/// Writes `expr` as condition text. For any tree [`parse`] produces, parsing
/// the text gives the same tree, spans aside: values are quoted when they
/// cannot stand bare, and parentheses keep the grouping.
pub fn to_condition_text(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

fn write_expr(out: &mut String, expr: &Expr) {
    match expr {
        Expr::And(operands) | Expr::Or(operands) => {
            let is_and = matches!(expr, Expr::And(_));
            for (i, operand) in operands.iter().enumerate() {
                if i > 0 {
                    out.push_str(if is_and { " and " } else { " or " });
                }
                // An `and` inside an `or` binds tighter already; any other
                // nested chain would merge or regroup without parentheses.
                let wrap = match operand {
                    Expr::Or(_) => true,
                    Expr::And(_) => is_and,
                    _ => false,
                };
                write_grouped(out, operand, wrap);
            }
        }
        Expr::Not(child, _) => {
            out.push_str("not ");
            let wrap = !matches!(
                **child,
                Expr::Compare(_) | Expr::Exists(..) | Expr::Macro(..)
            );
            write_grouped(out, child, wrap);
        }
        Expr::Compare(compare) => {
            write_operand(out, &compare.left);
            let _ = write!(out, " {} ", compare.op.as_str());
            match &compare.right {
                Value::Literal(literal) => {
                    let keep_bare = match compare.op {
                        op if is_numeric(op) => true,
                        op if op.takes_list() => is_identifier(&literal.text),
                        _ => is_bare_value(&literal.text),
                    };
                    write_literal(out, literal, keep_bare);
                }
                Value::List(items, _) => {
                    out.push('(');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        write_literal(out, item, is_bare_value(&item.text));
                    }
                    out.push(')');
                }
                Value::Field(Operand::Field(field)) => {
                    out.push_str("val(");
                    write_field(out, field);
                    out.push(')');
                }
                Value::Field(operand) => write_operand(out, operand),
            }
        }
        Expr::Exists(operand, _) => {
            write_operand(out, operand);
            out.push_str(" exists");
        }
        Expr::Macro(name, _) => out.push_str(name),
    }
}

fn write_grouped(out: &mut String, expr: &Expr, wrap: bool) {
    if wrap {
        out.push('(');
    }
    write_expr(out, expr);
    if wrap {
        out.push(')');
    }
}

fn write_operand(out: &mut String, operand: &Operand) {
    match operand {
        Operand::Field(field) => write_field(out, field),
        Operand::Transform(transformer, inner, _) => {
            let name = match transformer {
                Transformer::ToLower => "tolower",
                Transformer::ToUpper => "toupper",
                Transformer::B64 => "b64",
                Transformer::Basename => "basename",
                Transformer::Len => "len",
            };
            out.push_str(name);
            out.push('(');
            write_operand(out, inner);
            out.push(')');
        }
    }
}

fn write_field(out: &mut String, field: &FieldRef) {
    out.push_str(&field.name);
    if let Some(arg) = &field.arg {
        out.push('[');
        if !arg.is_empty() && arg.chars().all(lexer::is_field_arg_char) {
            out.push_str(arg);
        } else {
            write_quoted(out, arg);
        }
        out.push(']');
    }
}

fn write_literal(out: &mut String, literal: &Literal, keep_bare: bool) {
    if !literal.quoted && keep_bare {
        out.push_str(&literal.text);
    } else {
        write_quoted(out, &literal.text);
    }
}

fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            // A string cannot end in `\\`: the closing quote would count as
            // escaped.
            '\\' if chars.peek().is_none() => out.push_str("\\x5c"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn is_identifier(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphabetic)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Whether `text` reads back as one bare value.
fn is_bare_value(text: &str) -> bool {
    !text.is_empty() && text.chars().all(lexer::is_bare_value_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Expr {
        parse(text).unwrap_or_else(|error| panic!("{text:?}: {error} at {}", error.offset))
    }

    fn failure(text: &str) -> ParseError {
        match parse(text) {
            Ok(expr) => panic!("{text:?} parsed as {expr:?}"),
            Err(error) => error,
        }
    }

    /// The tree with every span emptied, to compare shapes.
    fn shape(text: &str) -> Expr {
        strip(&parsed(text))
    }

    fn strip(expr: &Expr) -> Expr {
        match expr {
            Expr::And(operands) => Expr::And(operands.iter().map(strip).collect()),
            Expr::Or(operands) => Expr::Or(operands.iter().map(strip).collect()),
            Expr::Not(child, _) => Expr::Not(Box::new(strip(child)), 0..0),
            Expr::Compare(compare) => Expr::Compare(Compare {
                left: strip_operand(&compare.left),
                op: compare.op,
                right: match &compare.right {
                    Value::Literal(literal) => Value::Literal(strip_literal(literal)),
                    Value::List(items, _) => {
                        Value::List(items.iter().map(strip_literal).collect(), 0..0)
                    }
                    Value::Field(operand) => Value::Field(strip_operand(operand)),
                },
                span: 0..0,
            }),
            Expr::Exists(operand, _) => Expr::Exists(strip_operand(operand), 0..0),
            Expr::Macro(name, _) => Expr::Macro(name.clone(), 0..0),
        }
    }

    fn strip_operand(operand: &Operand) -> Operand {
        match operand {
            Operand::Field(field) => Operand::Field(FieldRef {
                span: 0..0,
                ..field.clone()
            }),
            Operand::Transform(transformer, inner, _) => {
                Operand::Transform(*transformer, Box::new(strip_operand(inner)), 0..0)
            }
        }
    }

    fn strip_literal(literal: &Literal) -> Literal {
        Literal {
            span: 0..0,
            ..literal.clone()
        }
    }

    fn field(name: &str) -> Operand {
        Operand::Field(FieldRef {
            name: name.to_owned(),
            arg: None,
            span: 0..0,
        })
    }

    fn field_arg(name: &str, arg: &str) -> Operand {
        Operand::Field(FieldRef {
            name: name.to_owned(),
            arg: Some(arg.to_owned()),
            span: 0..0,
        })
    }

    fn transform(transformer: Transformer, inner: Operand) -> Operand {
        Operand::Transform(transformer, Box::new(inner), 0..0)
    }

    fn bare(text: &str) -> Literal {
        Literal {
            text: text.to_owned(),
            quoted: false,
            span: 0..0,
        }
    }

    fn quoted(text: &str) -> Literal {
        Literal {
            quoted: true,
            ..bare(text)
        }
    }

    fn compare(left: Operand, op: CmpOp, right: Value) -> Expr {
        Expr::Compare(Compare {
            left,
            op,
            right,
            span: 0..0,
        })
    }

    fn check(name: &str, op: CmpOp, value: &str) -> Expr {
        compare(field(name), op, Value::Literal(bare(value)))
    }

    fn list(items: &[Literal]) -> Value {
        Value::List(items.to_vec(), 0..0)
    }

    fn macro_ref(name: &str) -> Expr {
        Expr::Macro(name.to_owned(), 0..0)
    }

    fn not(expr: Expr) -> Expr {
        Expr::Not(Box::new(expr), 0..0)
    }

    #[test]
    fn a_comparison_keeps_the_spans_of_each_part() {
        assert_eq!(
            parsed("proc.name = bash"),
            Expr::Compare(Compare {
                left: Operand::Field(FieldRef {
                    name: "proc.name".to_owned(),
                    arg: None,
                    span: 0..9,
                }),
                op: CmpOp::Eq,
                right: Value::Literal(Literal {
                    text: "bash".to_owned(),
                    quoted: false,
                    span: 12..16,
                }),
                span: 0..16,
            })
        );
    }

    #[test]
    fn symbol_operators_may_touch_their_operands() {
        assert_eq!(
            shape("evt.type=execve"),
            check("evt.type", CmpOp::Eq, "execve")
        );
        assert_eq!(shape("a.b!=c"), check("a.b", CmpOp::Ne, "c"));
        assert_eq!(shape("a.b==c"), check("a.b", CmpOp::Eq, "c"));
        assert_eq!(shape("a.b<=5"), check("a.b", CmpOp::Le, "5"));
        assert_eq!(shape("a.b>-1"), check("a.b", CmpOp::Gt, "-1"));
        assert_eq!(shape("a.b =<"), check("a.b", CmpOp::Eq, "<"));
    }

    #[test]
    fn every_operator_is_read_with_its_kind_of_value() {
        for op in [CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge] {
            let text = format!("fd.num {} 3", op.as_str());
            assert_eq!(shape(&text), check("fd.num", op, "3"), "{text}");
        }
        for op in [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Contains,
            CmpOp::IContains,
            CmpOp::BContains,
            CmpOp::StartsWith,
            CmpOp::BStartsWith,
            CmpOp::EndsWith,
            CmpOp::Glob,
            CmpOp::IGlob,
            CmpOp::Regex,
        ] {
            let text = format!("fd.name {} /tmp", op.as_str());
            assert_eq!(shape(&text), check("fd.name", op, "/tmp"), "{text}");
        }
        for op in [CmpOp::In, CmpOp::Intersects, CmpOp::PMatch] {
            let text = format!("fd.name {} (/tmp, /var)", op.as_str());
            let expected = compare(field("fd.name"), op, list(&[bare("/tmp"), bare("/var")]));
            assert_eq!(shape(&text), expected, "{text}");
        }
        assert_eq!(
            shape("proc.name exists"),
            Expr::Exists(field("proc.name"), 0..0)
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_chains_are_flat() {
        assert_eq!(
            shape("a or b and c and d or e"),
            Expr::Or(vec![
                macro_ref("a"),
                Expr::And(vec![macro_ref("b"), macro_ref("c"), macro_ref("d")]),
                macro_ref("e"),
            ])
        );
        assert_eq!(
            shape("a.a=1 or b.b=2 and c"),
            Expr::Or(vec![
                check("a.a", CmpOp::Eq, "1"),
                Expr::And(vec![check("b.b", CmpOp::Eq, "2"), macro_ref("c")]),
            ])
        );
    }

    #[test]
    fn parentheses_group_without_merging_into_the_outer_chain() {
        assert_eq!(
            shape("(a and b) and c"),
            Expr::And(vec![
                Expr::And(vec![macro_ref("a"), macro_ref("b")]),
                macro_ref("c")
            ])
        );
        assert_eq!(
            shape("a and (b or c)"),
            Expr::And(vec![
                macro_ref("a"),
                Expr::Or(vec![macro_ref("b"), macro_ref("c")])
            ])
        );
        assert_eq!(shape("((((a))))"), macro_ref("a"));
        assert_eq!(
            shape("(a)and(b)or(c)"),
            Expr::Or(vec![
                Expr::And(vec![macro_ref("a"), macro_ref("b")]),
                macro_ref("c")
            ])
        );
    }

    #[test]
    fn not_binds_to_one_check_and_spans_its_keyword_and_operand() {
        assert_eq!(
            shape("not a.b = 1 and c"),
            Expr::And(vec![not(check("a.b", CmpOp::Eq, "1")), macro_ref("c")])
        );
        assert_eq!(
            parsed("x and not (a or b)"),
            Expr::And(vec![
                Expr::Macro("x".to_owned(), 0..1),
                Expr::Not(
                    Box::new(Expr::Or(vec![
                        Expr::Macro("a".to_owned(), 11..12),
                        Expr::Macro("b".to_owned(), 16..17),
                    ])),
                    6..18
                ),
            ])
        );
    }

    #[test]
    fn not_may_touch_an_opening_parenthesis() {
        assert_eq!(
            parsed("not(a)"),
            Expr::Not(Box::new(Expr::Macro("a".to_owned(), 4..5)), 0..6)
        );
        assert_eq!(
            shape("not(a)and(not(b))"),
            Expr::And(vec![not(macro_ref("a")), not(macro_ref("b"))])
        );
    }

    #[test]
    fn each_not_toggles_and_parentheses_start_afresh_as_in_libsinsp() {
        assert_eq!(shape("not not a"), macro_ref("a"));
        assert_eq!(shape("not not(a)"), macro_ref("a"));
        assert_eq!(shape("not not not a"), not(macro_ref("a")));
        assert_eq!(shape("not (not a)"), not(not(macro_ref("a"))));
        assert_eq!(shape("not(not(a))"), not(not(macro_ref("a"))));
        assert_eq!(
            shape("not not not not not(not not(not not_macro))"),
            not(not(macro_ref("not_macro")))
        );
        assert_eq!(parsed("not\n\tnot a"), Expr::Macro("a".to_owned(), 9..10));
    }

    #[test]
    fn a_bare_identifier_is_a_macro_even_when_it_starts_like_a_keyword() {
        for name in [
            "incontainer",
            "not_macro",
            "notb",
            "and_macro",
            "or_x",
            "exists",
            "in",
            "val",
        ] {
            let text = format!("a and {name}");
            assert_eq!(
                shape(&text),
                Expr::And(vec![macro_ref("a"), macro_ref(name)]),
                "{text}"
            );
        }
        assert_eq!(
            parsed("  spawned_process "),
            Expr::Macro("spawned_process".to_owned(), 2..17)
        );
    }

    #[test]
    fn word_operators_end_at_a_word_boundary() {
        assert_eq!(
            shape("proc.name in(a)"),
            compare(field("proc.name"), CmpOp::In, list(&[bare("a")]))
        );
        assert_eq!(
            shape("proc.name intersects(a)"),
            compare(field("proc.name"), CmpOp::Intersects, list(&[bare("a")]))
        );
        for text in [
            "proc.name incontainer",
            "x.y existsand m",
            "x.y inlist",
            "proc.name containsx",
        ] {
            let error = failure(text);
            assert!(
                error.message.starts_with("expected a comparison operator"),
                "{text}: {error}"
            );
        }
        let error = failure("proc.name contains(x)");
        assert_eq!(error.offset, 18);
        assert_eq!(
            error.message,
            "expected a blank after \"contains\", found \"(\""
        );
    }

    #[test]
    fn keywords_and_operators_are_case_sensitive() {
        for text in [
            "a AND b",
            "a Or b",
            "NOT a",
            "a.b EXISTS",
            "a.b Contains x",
            "a.b IN (x)",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn lists_hold_bare_and_quoted_items_and_may_be_empty() {
        assert_eq!(
            shape(r#"proc.name in (a, b, "c d", 'e', shell_binaries)"#),
            compare(
                field("proc.name"),
                CmpOp::In,
                list(&[
                    bare("a"),
                    bare("b"),
                    quoted("c d"),
                    quoted("e"),
                    bare("shell_binaries")
                ])
            )
        );
        assert_eq!(
            shape("fd.name pmatch ()"),
            compare(field("fd.name"), CmpOp::PMatch, list(&[]))
        );
        assert_eq!(
            shape("fd.name in()"),
            compare(field("fd.name"), CmpOp::In, list(&[]))
        );
        assert_eq!(
            shape("a.g in ( 1 ,'a' , b.c,0a!@#456:/\\.;!$%^&*[]{}| )"),
            compare(
                field("a.g"),
                CmpOp::In,
                list(&[
                    bare("1"),
                    quoted("a"),
                    bare("b.c"),
                    bare("0a!@#456:/\\.;!$%^&*[]{}|")
                ])
            )
        );
        let Expr::Compare(compare) = parsed("x.y in (a, 'b')") else {
            panic!("not a comparison");
        };
        assert_eq!(
            compare.right,
            Value::List(
                vec![
                    Literal {
                        text: "a".to_owned(),
                        quoted: false,
                        span: 8..9
                    },
                    Literal {
                        text: "b".to_owned(),
                        quoted: true,
                        span: 11..14
                    },
                ],
                7..15
            )
        );
        assert_eq!(compare.span, 0..15);
    }

    #[test]
    fn a_list_operator_may_name_a_list_without_parentheses() {
        assert_eq!(
            shape("proc.name in shell_binaries"),
            check("proc.name", CmpOp::In, "shell_binaries")
        );
        assert!(parse("proc.name in a.b").is_err());
        assert!(parse("proc.name in 'a'").is_err());
    }

    #[test]
    fn fields_take_an_argument_in_brackets() {
        assert_eq!(
            shape("proc.aname[2] = sshd"),
            compare(
                field_arg("proc.aname", "2"),
                CmpOp::Eq,
                Value::Literal(bare("sshd"))
            )
        );
        assert_eq!(
            shape("k8s.pod.label[app.kubernetes.io/name] = web"),
            compare(
                field_arg("k8s.pod.label", "app.kubernetes.io/name"),
                CmpOp::Eq,
                Value::Literal(bare("web"))
            )
        );
        assert_eq!(
            shape("a.b['x y'] exists"),
            Expr::Exists(field_arg("a.b", "x y"), 0..0)
        );
        assert_eq!(
            shape("evt.arg.flags contains O_CREAT"),
            check("evt.arg.flags", CmpOp::Contains, "O_CREAT")
        );
        let Expr::Compare(compare) = parsed("evt.arg[0] contains /bin") else {
            panic!("not a comparison");
        };
        assert_eq!(compare.left.span(), 0..10);
    }

    #[test]
    fn a_field_argument_is_never_empty_and_has_no_blanks() {
        let error = failure("fd.types[] = x");
        assert_eq!(error.offset, 9);
        assert_eq!(
            error.message,
            "expected a field argument after \"[\", found \"]\""
        );
        assert_eq!(failure("a.b[ x] = y").offset, 4);
        assert_eq!(
            failure("a.b[x = y").message,
            "expected \"]\" after the field argument, found a blank"
        );
        assert!(parse("a.b [x] = y").is_err());
    }

    #[test]
    fn transformers_nest_on_the_left_and_val_or_transformers_stand_on_the_right() {
        assert_eq!(
            shape("tolower( toupper(evt.type) ) in val(some.field)"),
            compare(
                transform(
                    Transformer::ToLower,
                    transform(Transformer::ToUpper, field("evt.type"))
                ),
                CmpOp::In,
                Value::Field(field("some.field"))
            )
        );
        assert_eq!(
            shape("proc.name=b64(tolower(some.field[1]))"),
            compare(
                field("proc.name"),
                CmpOp::Eq,
                Value::Field(transform(
                    Transformer::B64,
                    transform(Transformer::ToLower, field_arg("some.field", "1"))
                ))
            )
        );
        assert_eq!(
            shape("len(proc.args) > val(proc.pid)"),
            compare(
                transform(Transformer::Len, field("proc.args")),
                CmpOp::Gt,
                Value::Field(field("proc.pid"))
            )
        );
        assert_eq!(
            shape("basename(proc.exe) exists"),
            Expr::Exists(transform(Transformer::Basename, field("proc.exe")), 0..0)
        );
        let Expr::Compare(compare) = parsed("tolower(a.b) = val(c.d)") else {
            panic!("not a comparison");
        };
        assert_eq!(compare.left.span(), 0..12);
        assert_eq!(
            compare.right,
            Value::Field(Operand::Field(FieldRef {
                name: "c.d".to_owned(),
                arg: None,
                span: 19..22,
            }))
        );
        assert_eq!(compare.span, 0..23);
    }

    #[test]
    fn transformers_are_misused_in_the_ways_libsinsp_rejects() {
        for text in [
            "val(a.b) exists",
            "b64(val(a.b)) exists",
            "b64 (a.b) exists",
            "b64(a.b exists",
            "b64(ab) exists",
            "fake(a.b) exists",
            "a.b = val(val(c.d))",
            "a.b = val(b64(c.d))",
            "a.b = b64 (c.d)",
            "a.b = (b64(c.d))",
            "a.b in (b64(c.d))",
            "a.b = fake(c.d)",
            "a.b = val(c.d [1])",
            "a.b = b64and(m)",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        assert_eq!(
            shape("a.b = b64 and(m)"),
            Expr::And(vec![check("a.b", CmpOp::Eq, "b64"), macro_ref("m")])
        );
        assert_eq!(
            failure("join(a.b) exists").message,
            "expected a supported transformer, found \"join\", which is not supported yet"
        );
        assert_eq!(
            failure("tolower(a.b, c.d) exists").message,
            "expected \")\" to close \"tolower(\", found \",\""
        );
    }

    #[test]
    fn bare_values_take_the_characters_libsinsp_allows() {
        for value in [
            "/etc/",
            "O_RDONLY",
            "-1",
            "127.0.0.1",
            "10.0.0.0/8",
            "/usr/bin/*",
            "*.sh",
            "%",
            "!0.1222e+10",
            "0a!@#456:/\\.;!$%^&*[]{}|",
            "not",
            "caf\u{e9}",
        ] {
            let text = format!("x.y = {value}");
            assert_eq!(shape(&text), check("x.y", CmpOp::Eq, value), "{text}");
        }
        for text in ["x.y = a,", "x.y = a=", "x.y = a('\")", "x.y = b = 1"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn quoted_values_are_unescaped_and_remember_they_were_quoted() {
        assert_eq!(
            shape(r#"proc.cmdline startswith "sh -c envdir \"/run/etc\" wal-g""#),
            compare(
                field("proc.cmdline"),
                CmpOp::StartsWith,
                Value::Literal(quoted("sh -c envdir \"/run/etc\" wal-g"))
            )
        );
        assert_eq!(
            shape("x.y = ''"),
            compare(field("x.y"), CmpOp::Eq, Value::Literal(quoted("")))
        );
        assert_eq!(
            shape(r"x.y = 'multiple \' \\''"),
            compare(
                field("x.y"),
                CmpOp::Eq,
                Value::Literal(quoted("multiple ' \\'"))
            )
        );
        assert_eq!(
            shape("x.y = \"mixed '\""),
            compare(field("x.y"), CmpOp::Eq, Value::Literal(quoted("mixed '")))
        );
        let Expr::Compare(compare) = parsed("x.y = 'a b'") else {
            panic!("not a comparison");
        };
        assert_eq!(compare.span, 0..11);
    }

    #[test]
    fn numeric_operators_take_only_numbers() {
        for value in [
            "1000",
            "+1",
            "-1",
            "0x12345",
            "0XaB00AB",
            "1.2",
            "-0.1222e+10",
        ] {
            let text = format!("x.n >= {value}");
            assert_eq!(shape(&text), check("x.n", CmpOp::Ge, value), "{text}");
        }
        for text in [
            "x.n > !0.1",
            "x.n < 0xAAA.1",
            "x.n >= 0aaaa",
            "x.n <= a",
            "x.n > '5'",
            "x.n > (1)",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        let error = failure("x.n <= a");
        assert_eq!(error.offset, 7);
        assert_eq!(error.message, "expected a number after \"<=\", found \"a\"");
    }

    #[test]
    fn string_operators_never_take_a_list() {
        for text in [
            "x.y = (a)",
            "x.y contains (a)",
            "x.y startswith (a)",
            "x.y > (a)",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn blanks_of_every_kind_separate_tokens() {
        let text = "\n\tnot\ta.b\r\n=\x08c\nand\n(d.e\texists)\t";
        assert_eq!(
            shape(text),
            Expr::And(vec![
                not(check("a.b", CmpOp::Eq, "c")),
                Expr::Exists(field("d.e"), 0..0)
            ])
        );
    }

    #[test]
    fn and_and_or_need_a_blank_or_a_parenthesis_after_them() {
        assert_eq!(
            shape("a and(b)"),
            Expr::And(vec![macro_ref("a"), macro_ref("b")])
        );
        let error = failure("a.b exists and\"x\"");
        assert_eq!(error.offset, 14);
        assert_eq!(
            error.message,
            "expected a blank or \"(\" after \"and\", found \"\"x\"\""
        );
        for text in [
            "a andb",
            "aand b",
            "a orb",
            "a andnot b",
            "(a)andnot(b)",
            "a not b",
            "a and or b",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn or_touching_a_parenthesis_takes_only_the_group_as_in_libsinsp() {
        let error = failure("a or(b) and c");
        assert_eq!(error.offset, 8);
        assert!(
            error
                .message
                .starts_with("expected \"or\" after an \"or(...)\" group, found \"and\"")
        );
        assert_eq!(
            shape("a or (b) and c"),
            Expr::Or(vec![
                macro_ref("a"),
                Expr::And(vec![macro_ref("b"), macro_ref("c")])
            ])
        );
        assert_eq!(
            shape("a or(b) or c and d"),
            Expr::Or(vec![
                macro_ref("a"),
                macro_ref("b"),
                Expr::And(vec![macro_ref("c"), macro_ref("d")])
            ])
        );
    }

    #[test]
    fn keywords_are_never_macro_names() {
        for (text, offset) in [
            ("and a", 0),
            ("or a", 0),
            ("a and and", 6),
            ("not", 3),
            ("a and not", 9),
        ] {
            let error = failure(text);
            assert_eq!(error.offset, offset, "{text}: {error}");
            assert!(
                error.message.starts_with("expected a condition"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn an_unclosed_parenthesis_is_reported_at_the_end() {
        assert_eq!(
            failure("(proc.name = a and (b)"),
            ParseError {
                offset: 22,
                message: "expected \")\" to close the \"(\", found end of condition".to_owned(),
            }
        );
        assert_eq!(
            failure("(a b)"),
            ParseError {
                offset: 3,
                message: "expected \"and\", \"or\" or \")\", found \"b\"".to_owned(),
            }
        );
        assert_eq!(failure("a)").offset, 1);
    }

    #[test]
    fn a_missing_value_is_reported_where_the_value_should_be() {
        assert_eq!(
            failure("evt.type ="),
            ParseError {
                offset: 10,
                message: "expected a value after \"=\", found end of condition".to_owned(),
            }
        );
        assert_eq!(
            failure("evt.type = and b"),
            ParseError {
                offset: 15,
                message: "expected \"and\", \"or\" or the end of the condition, found \"b\""
                    .to_owned(),
            }
        );
        assert_eq!(
            failure("(evt.type != )").message,
            "expected a value after \"!=\", found \")\""
        );
        assert_eq!(
            failure("fd.name in").message,
            "expected a list or a list name after \"in\", found end of condition"
        );
        assert_eq!(
            failure("fd.name in (a,)").message,
            "expected a list item after \",\", found \")\""
        );
        assert_eq!(
            failure("fd.name in (,a)").message,
            "expected a list item or \")\", found \",\""
        );
        assert_eq!(
            failure("fd.name in (a").message,
            "expected \",\" or \")\" after a list item, found end of condition"
        );
    }

    #[test]
    fn an_unknown_operator_is_reported_with_the_field_it_follows() {
        assert_eq!(
            failure("proc.name ~= bash"),
            ParseError {
                offset: 10,
                message:
                    "expected a comparison operator or \"exists\" after \"proc.name\", found \"~=\""
                        .to_owned(),
            }
        );
        assert_eq!(failure("a.b === c").offset, 6);
        assert_eq!(failure("a.b !== c").offset, 6);
        assert_eq!(failure("macro > 12").offset, 6);
    }

    #[test]
    fn trailing_text_is_reported_where_it_starts() {
        assert_eq!(
            failure("a.b = c d"),
            ParseError {
                offset: 8,
                message: "expected \"and\", \"or\" or the end of the condition, found \"d\""
                    .to_owned(),
            }
        );
        assert_eq!(failure("fd.name=/var/lo);g").offset, 15);
        assert_eq!(failure("#a and b").offset, 0);
        assert_eq!(failure("a.b exists something").offset, 11);
    }

    #[test]
    fn an_unterminated_quote_is_reported_at_the_quote() {
        assert_eq!(
            failure("proc.name = \"bash and x.y = 1"),
            ParseError {
                offset: 12,
                message: "expected a closing \" to end the string, found end of condition"
                    .to_owned(),
            }
        );
        assert_eq!(failure("x.y in (a, 'b)").offset, 11);
        assert_eq!(failure(r#"x.y = "a\\""#).offset, 6);
    }

    #[test]
    fn an_empty_condition_is_an_error() {
        for text in ["", "  \n ", "()"] {
            let error = failure(text);
            assert!(
                error.message.starts_with("expected a condition"),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn unsupported_modifiers_say_so_where_libsinsp_would_read_them() {
        let error = failure("proc.name = oneof (a, b)");
        assert_eq!(error.offset, 12);
        assert!(
            error
                .message
                .contains("\"oneof\", which is not supported yet"),
            "{error}"
        );
        assert!(parse("proc.name contains anyof shell_binaries").is_err());
        assert_eq!(
            shape("proc.name = oneof"),
            check("proc.name", CmpOp::Eq, "oneof")
        );
        assert_eq!(
            shape("proc.name = allof and x"),
            Expr::And(vec![check("proc.name", CmpOp::Eq, "allof"), macro_ref("x")])
        );
    }

    #[test]
    fn nesting_is_limited_without_exhausting_the_stack() {
        let nested = |depth: usize| format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(shape(&nested(MAX_DEPTH)), macro_ref("a"));
        let error = failure(&nested(MAX_DEPTH + 1));
        assert_eq!(error.offset, MAX_DEPTH);
        assert!(
            error
                .message
                .starts_with(&format!("expected at most {MAX_DEPTH} levels")),
            "{error}"
        );
        assert_eq!(failure(&"(".repeat(100_000)).offset, MAX_DEPTH);
        assert!(parse(&"not(".repeat(100_000)).is_err());
        let deep = format!("{}a.b{} exists", "len(".repeat(300), ")".repeat(300));
        assert_eq!(failure(&deep).offset, 4 * MAX_DEPTH);
        let chain = vec!["a"; 10_000].join(" and not ");
        assert!(parse(&chain).is_ok());
    }

    /// Falco's stable ruleset, from its own repository.
    fn falco_rules() -> Vec<serde_yaml::Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/compat/falco-rules/falco_rules.yaml"
        );
        let text = std::fs::read_to_string(path).expect("Falco's rules are readable");
        serde_yaml::from_str(&text).expect("Falco's rules are YAML")
    }

    #[test]
    fn every_macro_and_rule_condition_of_falcos_stable_ruleset_parses() {
        let mut macros = 0;
        let mut rules = 0;
        let mut failures = Vec::new();
        for item in falco_rules() {
            let (kind, name) = if let Some(name) = item.get("macro") {
                macros += 1;
                ("macro", name)
            } else if let Some(name) = item.get("rule") {
                rules += 1;
                ("rule", name)
            } else {
                continue;
            };
            let name = name.as_str().unwrap_or_default();
            let condition = item
                .get("condition")
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            if let Err(error) = parse(condition) {
                failures.push(format!("{kind} {name:?}: {error} at {}", error.offset));
            }
        }
        assert_eq!(failures, Vec::<String>::new());
        assert_eq!((macros, rules), (87, 25));
    }

    #[test]
    fn printed_conditions_of_falcos_ruleset_read_back_the_same() {
        for item in falco_rules() {
            let Some(condition) = item.get("condition").and_then(|c| c.as_str()) else {
                continue;
            };
            let expr = parsed(condition);
            let printed = to_condition_text(&expr);
            assert_eq!(shape(&printed), strip(&expr), "{printed}");
        }
    }

    #[test]
    fn printing_quotes_what_cannot_stand_bare() {
        let expr = compare(
            field_arg("a.b", "x y"),
            CmpOp::In,
            list(&[
                bare("a b"),
                quoted("c"),
                bare("x\\"),
                quoted("tab\t\"end\\"),
            ]),
        );
        let printed = to_condition_text(&expr);
        assert_eq!(
            printed,
            r#"a.b["x y"] in ("a b", "c", x\, "tab\t\"end\x5c")"#
        );
        assert_eq!(
            shape(&printed),
            strip(&compare(
                field_arg("a.b", "x y"),
                CmpOp::In,
                list(&[
                    quoted("a b"),
                    quoted("c"),
                    bare("x\\"),
                    quoted("tab\t\"end\\")
                ]),
            ))
        );
        assert_eq!(to_condition_text(&not(not(macro_ref("a")))), "not (not a)");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

        /// A fixed seed, so a failure reproduces on every run and machine.
        const SEED: [u8; 32] = *b"falco conditions, fixed seed 01.";

        fn runner(cases: u32) -> TestRunner {
            let config = Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            };
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED))
        }

        fn never_panics(cases: u32, strategy: impl Strategy<Value = String>) {
            let result = runner(cases).run(&strategy, |text| {
                let _ = parse(&text);
                Ok(())
            });
            if let Err(error) = result {
                panic!("{error}");
            }
        }

        const TOKENS: &[&str] = &[
            "and",
            "or",
            "not",
            "not(",
            "(",
            ")",
            ",",
            "[",
            "]",
            "=",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "contains",
            "icontains",
            "bcontains",
            "startswith",
            "bstartswith",
            "endswith",
            "glob",
            "iglob",
            "pmatch",
            "in",
            "intersects",
            "regex",
            "exists",
            "oneof",
            "tolower(",
            "toupper(",
            "b64(",
            "basename(",
            "len(",
            "val(",
            "join(",
            "proc.name",
            "evt.arg[0]",
            "k8s.pod.label[a/b]",
            "fd.name",
            "spawned_process",
            "/usr/bin/*",
            "*.sh",
            "-1",
            "0x1F",
            "1.5e+3",
            "\"a b\"",
            "'c'",
            "\"\\x41\"",
            "\"",
            "'",
            "\\",
            "%",
            "~=",
            "\n",
            "\t",
            "é",
        ];

        const VALID: &[&str] = &[
            "spawned_process and container and proc.name in (shell_binaries, 'bash', \"zsh\")",
            "evt.type=execve and not proc.pname in (a, b) or fd.name startswith /etc/",
            "not(tolower(proc.exe) endswith .sh) and proc.aname[2] != sshd",
            "(fd.num >= 0x10 or fd.num < -1) and k8s.pod.label[app.kubernetes.io/name] exists",
            "proc.cmdline contains \"a \\\"b\\\"\" and fd.name = val(proc.cwd) and len(proc.args) > 3",
        ];

        #[test]
        fn the_parser_never_panics_on_random_text() {
            never_panics(400, any::<String>());
            never_panics(400, "[ -~\t\n]{0,60}");
        }

        #[test]
        fn the_parser_never_panics_on_soups_of_the_languages_tokens() {
            let soup =
                prop::collection::vec((prop::sample::select(TOKENS), prop::bool::ANY), 0..24)
                    .prop_map(|tokens| {
                        tokens
                            .into_iter()
                            .map(|(token, spaced)| {
                                if spaced {
                                    format!("{token} ")
                                } else {
                                    token.to_owned()
                                }
                            })
                            .collect::<String>()
                    });
            never_panics(600, soup);
        }

        #[test]
        fn the_parser_never_panics_on_mutated_valid_conditions() {
            let edit = (
                any::<prop::sample::Index>(),
                prop::option::of(any::<char>()),
            );
            let mutated = (
                prop::sample::select(VALID),
                prop::collection::vec(edit, 1..6),
            )
                .prop_map(|(text, edits)| {
                    let mut chars: Vec<char> = text.chars().collect();
                    for (at, insert) in edits {
                        let at = at.index(chars.len() + 1);
                        match insert {
                            Some(c) => chars.insert(at, c),
                            None if at < chars.len() => {
                                chars.remove(at);
                            }
                            None => {}
                        }
                    }
                    chars.into_iter().collect::<String>()
                });
            never_panics(600, mutated);
        }

        fn field_strategy() -> impl Strategy<Value = Operand> {
            let name = prop::sample::select(
                &[
                    "proc.name",
                    "evt.arg.flags",
                    "fd.name",
                    "k8s.pod.label",
                    "a1.b_2",
                ][..],
            );
            let arg = prop::option::of(prop_oneof!["[0-9a-z./_-]{1,6}", any::<String>()]);
            (name, arg).prop_map(|(name, arg)| {
                Operand::Field(FieldRef {
                    name: name.to_owned(),
                    arg,
                    span: 0..0,
                })
            })
        }

        fn operand_strategy() -> impl Strategy<Value = Operand> {
            let transformer = prop::sample::select(
                &[
                    Transformer::ToLower,
                    Transformer::ToUpper,
                    Transformer::B64,
                    Transformer::Basename,
                    Transformer::Len,
                ][..],
            );
            field_strategy().prop_recursive(3, 4, 1, move |inner| {
                (transformer.clone(), inner).prop_map(|(transformer, inner)| {
                    Operand::Transform(transformer, Box::new(inner), 0..0)
                })
            })
        }

        fn literal_strategy() -> impl Strategy<Value = Literal> {
            prop_oneof![
                "[a-zA-Z0-9/*._%:!<>-]{1,10}".prop_map(|text| bare(&text)),
                any::<String>().prop_map(|text| quoted(&text)),
            ]
        }

        fn right_field_strategy() -> impl Strategy<Value = Value> {
            prop_oneof![field_strategy(), operand_strategy()].prop_map(Value::Field)
        }

        fn compare_strategy() -> impl Strategy<Value = Expr> {
            let ops = [
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
                CmpOp::Contains,
                CmpOp::IContains,
                CmpOp::BContains,
                CmpOp::StartsWith,
                CmpOp::BStartsWith,
                CmpOp::EndsWith,
                CmpOp::Glob,
                CmpOp::IGlob,
                CmpOp::PMatch,
                CmpOp::In,
                CmpOp::Intersects,
                CmpOp::Regex,
            ];
            (operand_strategy(), prop::sample::select(ops.to_vec())).prop_flat_map(|(left, op)| {
                let right = if is_numeric(op) {
                    prop_oneof![
                        "[+-]?[0-9]{1,4}(\\.[0-9]{0,3})?(e[+-][0-9]{1,2})?"
                            .prop_map(|n| Value::Literal(bare(&n))),
                        "0x[0-9a-fA-F]{1,6}".prop_map(|n| Value::Literal(bare(&n))),
                        right_field_strategy(),
                    ]
                    .boxed()
                } else if op.takes_list() {
                    prop_oneof![
                        prop::collection::vec(literal_strategy(), 0..4)
                            .prop_map(|items| list(&items)),
                        "[a-z][a-z0-9_]{0,8}".prop_map(|name| Value::Literal(bare(&name))),
                        right_field_strategy(),
                    ]
                    .boxed()
                } else {
                    prop_oneof![
                        literal_strategy().prop_map(Value::Literal),
                        right_field_strategy()
                    ]
                    .boxed()
                };
                right.prop_map(move |right| compare(left.clone(), op, right))
            })
        }

        fn expr_strategy() -> impl Strategy<Value = Expr> {
            let name = "[a-z][a-z0-9_]{0,8}".prop_filter("keywords name no macro", |name| {
                !matches!(name.as_str(), "and" | "or" | "not")
            });
            let leaf = prop_oneof![
                compare_strategy(),
                operand_strategy().prop_map(|operand| Expr::Exists(operand, 0..0)),
                name.prop_map(|name| macro_ref(&name)),
            ];
            leaf.prop_recursive(4, 24, 3, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                    prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
                    inner.prop_map(not),
                ]
            })
        }

        #[test]
        fn printed_trees_parse_back_to_the_same_tree() {
            let result = runner(300).run(&expr_strategy(), |expr| {
                let text = to_condition_text(&expr);
                match parse(&text) {
                    Ok(back) => prop_assert_eq!(strip(&back), expr, "{}", text),
                    Err(error) => prop_assert!(false, "{text:?}: {error} at {}", error.offset),
                }
                Ok(())
            });
            if let Err(error) = result {
                panic!("{error}");
            }
        }
    }
}
