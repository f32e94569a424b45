//! The operators, compiled: each check's right side is read once, at
//! compile time, into the form that tests a value fastest (a hash set for
//! `in`, an automaton for many prefixes or substrings, an anchored regex).

use std::net::IpAddr;

use aho_corasick::{AhoCorasick, Anchored, Input, MatchKind, StartKind};
use memchr::memmem;
use rustc_hash::FxHashSet;

use super::fields::Val;

/// A compiled test of one value.
#[derive(Clone, Debug)]
pub enum Test {
    /// Text tests.
    Str(StrTest),
    /// Number tests.
    Int(IntTest),
    /// `= true` / `= false`.
    Bool(bool),
    /// Address tests.
    Ip(IpTest),
    /// Text or number, decided by the value (`evt.rawarg.*`).
    Dynamic {
        /// Used when the value is text.
        text: StrTest,
        /// Used when the value is a number and the literal was one.
        number: Option<IntTest>,
    },
}

/// A compiled text test.
#[derive(Clone, Debug)]
pub enum StrTest {
    /// Equal to.
    Eq(Box<str>),
    /// One of.
    In(FxHashSet<Box<str>>),
    /// Lexicographic comparison.
    Order(Ordering, Box<str>),
    /// Contains the substring.
    Contains(memmem::Finder<'static>),
    /// Contains any of the substrings (also used for `icontains`, with the
    /// automaton ignoring ASCII case).
    ContainsAny(AhoCorasick),
    /// Starts with.
    StartsWith(Box<str>),
    /// Starts with any of.
    StartsWithAny(AhoCorasick),
    /// Ends with.
    EndsWith(Box<str>),
    /// Ends with any of.
    EndsWithAny(Vec<Box<str>>),
    /// Matches the glob (`*`, `?`, `[...]`), optionally ignoring case.
    Glob(Box<str>, bool),
    /// The value is one of these paths or below one of them.
    PMatch(Vec<Box<str>>),
    /// The regex matches the whole value.
    Regex(regex::Regex),
    /// The value's bytes contain these bytes.
    BContains(memmem::Finder<'static>),
    /// The value's bytes start with these bytes.
    BStartsWith(Box<[u8]>),
}

/// How two ordered values compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl Ordering {
    fn holds<T: PartialOrd>(self, a: &T, b: &T) -> bool {
        match self {
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
        }
    }
}

/// A compiled number test.
#[derive(Clone, Debug)]
pub enum IntTest {
    /// Equal to.
    Eq(i64),
    /// Compared with.
    Order(Ordering, i64),
    /// One of.
    In(Box<[i64]>),
}

/// A compiled address test.
#[derive(Clone, Debug)]
pub enum IpTest {
    /// In any of these networks (an address is a network of one).
    In(Box<[IpNet]>),
}

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Reads `10.0.0.0/8`, `::1` or `127.0.0.1`.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Test {
    /// Whether the value passes. A list value passes when any item does.
    pub fn matches(&self, value: &Val<'_>) -> bool {
        if let Val::List(items) = value {
            return items.iter().any(|item| self.matches(item));
        }
        match (self, value) {
            (Self::Str(test), Val::Str(s)) => test.matches(s),
            (Self::Int(test), Val::Int(n)) => test.matches(*n),
            (Self::Bool(want), Val::Bool(b)) => want == b,
            (Self::Ip(test), Val::Ip(ip)) => test.matches(*ip),
            (Self::Dynamic { number, .. }, Val::Int(n)) => {
                number.as_ref().is_some_and(|t| t.matches(*n))
            }
            (Self::Dynamic { text, .. }, Val::Str(s)) => text.matches(s),
            // An address compared as text (a transformer made it one).
            (Self::Str(test), Val::Ip(ip)) => test.matches(&ip.to_string()),
            _ => false,
        }
    }
}

impl StrTest {
    /// Whether the text passes.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Self::Eq(want) => **want == *s,
            Self::In(set) => set.contains(s),
            Self::Order(order, want) => order.holds(&s, &&**want),
            Self::Contains(finder) | Self::BContains(finder) => finder.find(s.as_bytes()).is_some(),
            Self::ContainsAny(automaton) => automaton.is_match(s),
            Self::StartsWith(prefix) => s.starts_with(&**prefix),
            Self::StartsWithAny(automaton) => {
                automaton.is_match(Input::new(s).anchored(Anchored::Yes))
            }
            Self::EndsWith(suffix) => s.ends_with(&**suffix),
            Self::EndsWithAny(suffixes) => suffixes.iter().any(|x| s.ends_with(&**x)),
            Self::Glob(pattern, fold) => glob(pattern.as_bytes(), s.as_bytes(), *fold),
            Self::PMatch(paths) => paths.iter().any(|p| path_prefix(p, s)),
            Self::Regex(re) => re.is_match(s),
            Self::BStartsWith(bytes) => s.as_bytes().starts_with(bytes),
        }
    }

    /// `glob`: a pattern whose only wildcards are `*` at its ends is the
    /// text test it amounts to (`*/.aws/credentials` ends with
    /// `/.aws/credentials`, `*id_rsa*` contains `id_rsa`), which costs a
    /// compare or a search instead of the glob's backtracking over the
    /// value, and merges with its neighbours' tests.
    pub fn glob(pattern: &str, ignore_case: bool) -> Self {
        let inner = pattern.trim_start_matches('*');
        let leading = inner.len() < pattern.len();
        let literal = inner.trim_end_matches('*');
        let trailing = literal.len() < inner.len();
        let plain = !literal.is_empty() && !literal.contains(['*', '?', '[', '\\']);
        if ignore_case || !plain {
            return Self::Glob(pattern.into(), ignore_case);
        }
        match (leading, trailing) {
            (false, false) => Self::Eq(literal.into()),
            (false, true) => Self::StartsWith(literal.into()),
            (true, false) => Self::EndsWith(literal.into()),
            (true, true) => Self::Contains(memmem::Finder::new(literal.as_bytes()).into_owned()),
        }
    }

    /// `contains` for several substrings at once.
    pub fn contains_any(needles: &[&str], ignore_case: bool) -> Result<Self, String> {
        if let ([one], false) = (needles, ignore_case) {
            return Ok(Self::Contains(
                memmem::Finder::new(one.as_bytes()).into_owned(),
            ));
        }
        AhoCorasick::builder()
            .ascii_case_insensitive(ignore_case)
            .match_kind(MatchKind::Standard)
            .build(needles)
            .map(Self::ContainsAny)
            .map_err(|e| e.to_string())
    }

    /// `startswith` for several prefixes at once.
    pub fn starts_with_any(prefixes: &[&str]) -> Result<Self, String> {
        if let [one] = prefixes {
            return Ok(Self::StartsWith((*one).into()));
        }
        AhoCorasick::builder()
            .start_kind(StartKind::Anchored)
            .build(prefixes)
            .map(Self::StartsWithAny)
            .map_err(|e| e.to_string())
    }
}

impl IntTest {
    /// Whether the number passes.
    pub fn matches(&self, n: i64) -> bool {
        match self {
            Self::Eq(want) => n == *want,
            Self::Order(order, want) => order.holds(&n, want),
            Self::In(set) => set.contains(&n),
        }
    }
}

impl IpTest {
    /// Whether the address passes.
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match self {
            Self::In(nets) => nets.iter().any(|net| net.contains(ip)),
        }
    }
}

/// `pmatch`: the value is `prefix` or a path below it.
fn path_prefix(prefix: &str, value: &str) -> bool {
    match value.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
}

/// Shell-style glob: `*` any run, `?` one character, `[abc]`, `[a-z]`,
/// `[!x]`; iterative with one backtrack point, so it never explodes.
pub fn glob(pattern: &[u8], text: &[u8], fold: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
                continue;
            }
            Some(b'[') => {
                if let Some((matched, next)) = class(&pattern[p..], text[t], fold)
                    && matched
                {
                    p += next;
                    t += 1;
                    continue;
                }
            }
            Some(b'\\') if p + 1 < pattern.len() && eq(pattern[p + 1], text[t]) => {
                p += 2;
                t += 1;
                continue;
            }
            Some(&c) if c != b'\\' && eq(c, text[t]) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `pattern`: whether `c` is in it, and the
/// class's length; `None` when the class is not closed.
fn class(pattern: &[u8], c: u8, fold: bool) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let c = if fold { c.to_ascii_lowercase() } else { c };
    let norm = |x: u8| if fold { x.to_ascii_lowercase() } else { x };
    let mut found = false;
    let mut first = true;
    while let Some(&x) = pattern.get(i) {
        if x == b']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&y| y != b']') {
            let (lo, hi) = (norm(x), norm(pattern[i + 2]));
            found |= lo <= c && c <= hi;
            i += 3;
        } else {
            found |= norm(x) == c;
            i += 1;
        }
    }
    None
}

/// Reads hex bytes (`bcontains 7f454c46`).
pub fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob(b"/usr/bin/*", b"/usr/bin/ls", false));
        assert!(glob(b"*.sh", b"/tmp/x.sh", false));
        assert!(!glob(b"*.sh", b"/tmp/x.shx", false));
        assert!(glob(b"/etc/?asswd", b"/etc/passwd", false));
        assert!(glob(b"/dev/[st]d[a-z]", b"/dev/sda", false));
        assert!(!glob(b"/dev/[!s]da", b"/dev/sda", false));
        assert!(glob(b"*SHADOW*", b"/etc/shadow", true));
        assert!(glob(b"a*b*c*d", b"aXbXXcXXXd", false));
        assert!(!glob(b"a*b*c*d", &[b'a'; 10_000], false));
    }

    #[test]
    fn a_glob_compiled_to_a_text_test_matches_as_the_glob_does() {
        let patterns = [
            "*/.aws/credentials",
            "/home/*",
            "*id_rsa*",
            "**/.azure/**",
            "/etc/shadow",
            "*",
            "",
            "a*b",
            "*?ssh*",
            "*[ab]*",
            "*\\**",
            "/usr/bin/*",
        ];
        let texts = [
            "/root/.aws/credentials",
            "/.aws/credentials",
            ".aws/credentials",
            "/home/u/.ssh/id_rsa.pub",
            "/home/",
            "/home",
            "/etc/shadow",
            "/etc/shadowx",
            "/x/.azure/y",
            "/.azure/",
            "ab",
            "axb",
            "a*b",
            "",
            "/usr/bin/ls",
            "/usr/bin/",
        ];
        for pattern in patterns {
            let test = StrTest::glob(pattern, false);
            for text in texts {
                assert_eq!(
                    test.matches(text),
                    glob(pattern.as_bytes(), text.as_bytes(), false),
                    "{pattern:?} on {text:?}"
                );
            }
        }
        assert!(matches!(
            StrTest::glob("*/.aws/credentials", false),
            StrTest::EndsWith(_)
        ));
        assert!(matches!(
            StrTest::glob("/home/*", false),
            StrTest::StartsWith(_)
        ));
        assert!(matches!(
            StrTest::glob("*id_rsa*", false),
            StrTest::Contains(_)
        ));
        assert!(matches!(StrTest::glob("a*b", false), StrTest::Glob(..)));
        assert!(matches!(StrTest::glob("*ID_RSA*", true), StrTest::Glob(..)));
    }

    #[test]
    fn pmatch_is_a_path_prefix_not_a_string_prefix() {
        assert!(path_prefix("/etc", "/etc/passwd"));
        assert!(path_prefix("/etc", "/etc"));
        assert!(!path_prefix("/etc", "/etcd/data"));
        assert!(path_prefix("/etc/", "/etc/x"));
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net = IpNet::parse("10.0.0.0/8").expect("a network");
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        let test = IpTest::In(Box::new([net]));
        assert!(test.matches("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(IpNet::parse("1.2.3.4/33").is_none());
        assert!(
            IpNet::parse("0.0.0.0/0")
                .expect("all")
                .contains("8.8.8.8".parse().expect("ip"))
        );
    }

    #[test]
    fn many_prefixes_and_substrings_are_one_automaton() {
        let prefixes = StrTest::starts_with_any(&["/bin/", "/sbin/", "/usr/bin/"]).expect("builds");
        assert!(prefixes.matches("/usr/bin/ls") && !prefixes.matches("/opt/usr/bin/ls"));
        let words = StrTest::contains_any(&["XMRIG", "stratum+tcp"], true).expect("builds");
        assert!(words.matches("./xmrig -o pool") && !words.matches("ls -l"));
    }

    #[test]
    fn a_list_value_passes_when_any_item_does() {
        let test = Test::Str(StrTest::Eq("bash".into()));
        let list = Val::List(vec![Val::Str("sshd".into()), Val::Str("bash".into())]);
        assert!(test.matches(&list));
        assert_eq!(hex_bytes("7f454c46"), Some(vec![0x7f, 0x45, 0x4c, 0x46]));
        assert_eq!(hex_bytes("7f4"), None);
    }
}
