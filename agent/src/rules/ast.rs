//! The condition language's syntax tree, as the [parser](super::parser)
//! builds it and before macros and lists are resolved.
//!
//! Every node keeps the byte span of its text in the condition string, so
//! that a later pass (unknown field, bad regex) can point at it; the
//! condition's [`SourceText`](super::loader::SourceText) turns a byte offset
//! into a file position.

use std::ops::Range;

/// Byte offsets into the condition text.
pub type Span = Range<usize>;

/// A boolean expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// All must hold (two or more operands, flattened).
    And(Vec<Expr>),
    /// At least one must hold (two or more operands, flattened).
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>, Span),
    /// `field op value`.
    Compare(Compare),
    /// `field exists`.
    Exists(Operand, Span),
    /// A bare identifier in a boolean position: a macro reference.
    Macro(String, Span),
}

/// A binary check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The left side: a field, possibly inside transformers.
    pub left: Operand,
    /// The operator.
    pub op: CmpOp,
    /// The right side.
    pub right: Value,
    /// The whole check.
    pub span: Span,
}

/// A value produced from the event: a field, possibly transformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// `name` or `name[arg]`, e.g. `proc.name`, `proc.aname[2]`,
    /// `evt.arg.flags` (the catalog splits `evt.arg` from `flags`).
    Field(FieldRef),
    /// `tolower(...)`, `toupper(...)`, `b64(...)`, `basename(...)`, ...
    Transform(Transformer, Box<Operand>, Span),
}

impl Operand {
    /// The text span of the whole operand.
    pub fn span(&self) -> Span {
        match self {
            Self::Field(field) => field.span.clone(),
            Self::Transform(_, _, span) => span.clone(),
        }
    }
}

/// A field as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRef {
    /// The dotted name, e.g. `proc.aname` or `evt.arg.flags`.
    pub name: String,
    /// The text inside `[...]`, if any, e.g. `2` in `proc.aname[2]`.
    pub arg: Option<String>,
    /// The field's text, argument included.
    pub span: Span,
}

/// A transformer applied to an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transformer {
    /// `tolower`.
    ToLower,
    /// `toupper`.
    ToUpper,
    /// `b64`: base64-decodes.
    B64,
    /// `basename`.
    Basename,
    /// `len`: the length of a string or list.
    Len,
}

impl Transformer {
    /// Its name as written.
    pub fn name(self) -> &'static str {
        match self {
            Self::ToLower => "tolower",
            Self::ToUpper => "toupper",
            Self::B64 => "b64",
            Self::Basename => "basename",
            Self::Len => "len",
        }
    }

    /// The transformer with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "tolower" => Self::ToLower,
            "toupper" => Self::ToUpper,
            "b64" => Self::B64,
            "basename" => Self::Basename,
            "len" => Self::Len,
            _ => return None,
        })
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=` or `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `contains`.
    Contains,
    /// `icontains`.
    IContains,
    /// `bcontains` (hex bytes).
    BContains,
    /// `startswith`.
    StartsWith,
    /// `bstartswith` (hex bytes).
    BStartsWith,
    /// `endswith`.
    EndsWith,
    /// `glob`.
    Glob,
    /// `iglob`.
    IGlob,
    /// `pmatch` (path prefix match against a list).
    PMatch,
    /// `in`.
    In,
    /// `intersects`.
    Intersects,
    /// `regex`.
    Regex,
}

impl CmpOp {
    /// The operator as written (the first spelling for `=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Contains => "contains",
            Self::IContains => "icontains",
            Self::BContains => "bcontains",
            Self::StartsWith => "startswith",
            Self::BStartsWith => "bstartswith",
            Self::EndsWith => "endswith",
            Self::Glob => "glob",
            Self::IGlob => "iglob",
            Self::PMatch => "pmatch",
            Self::In => "in",
            Self::Intersects => "intersects",
            Self::Regex => "regex",
        }
    }

    /// The operator with this spelling (as in an exception's `comps`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "=" | "==" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "contains" => Self::Contains,
            "icontains" => Self::IContains,
            "bcontains" => Self::BContains,
            "startswith" => Self::StartsWith,
            "bstartswith" => Self::BStartsWith,
            "endswith" => Self::EndsWith,
            "glob" => Self::Glob,
            "iglob" => Self::IGlob,
            "pmatch" => Self::PMatch,
            "in" => Self::In,
            "intersects" => Self::Intersects,
            "regex" => Self::Regex,
            _ => return None,
        })
    }

    /// Whether the right side is a list: `in`, `intersects`, `pmatch`.
    pub fn takes_list(self) -> bool {
        matches!(self, Self::In | Self::Intersects | Self::PMatch)
    }
}

/// The right side of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// One literal, quoted or bare (`execve`, `"/etc/"`, `-1`).
    Literal(Literal),
    /// `(a, b, list_name, "c")`: bare items that name a list are expanded
    /// when lists are resolved.
    List(Vec<Literal>, Span),
    /// `val(field)`: another field of the same event.
    Field(Operand),
}

/// A literal as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Literal {
    /// The text, unquoted and unescaped.
    pub text: String,
    /// Whether it was quoted (a quoted item is never a list name).
    pub quoted: bool,
    /// Its span, quotes included.
    pub span: Span,
}
