//! EventBridge event patterns, evaluated the way EventBridge evaluates them.
//!
//! Why this exists: the sandbox routes events through moto's EventBridge, and moto (5.2.1)
//! flattens nested objects but never arrays of objects. A pattern on
//! `detail.findings.Workflow.Status` therefore never matches a Security Hub event, whose
//! `detail.findings` is an array of objects, where real EventBridge matches when any finding
//! does. [`needs_array_flattening`] says when moto cannot decide a pattern on an event, and
//! [`matches`] gives EventBridge's answer so those events can still be routed (and the output
//! can say that the evaluator, not moto, routed them).
//!
//! The semantics follow the EventBridge content-filtering documentation and its engine,
//! aws/event-ruler:
//!
//! - Every field a pattern names must match (AND); a field matches when any entry of its list
//!   matches (OR); `$or` (a list of two or more patterns) matches when any of them does.
//! - Values are compared as JSON: `"5"` is not `5`, `true` is not `"true"`, `null` is a value.
//!   Numbers compare by value, so `5` matches `5.0`.
//! - An array in the event matches when any element matches. Arrays of objects are crushed
//!   out of the path: `a.b.c` reaches `c` through every element of an array `a` or `b`. A
//!   sub-pattern under such an array must match within one element (Ruler's
//!   `rulesForJSONEvent` array consistency): two findings cannot combine to satisfy one
//!   finding's pattern.
//! - Only leaves carry values: a field that is missing, an object, an empty array or an array
//!   of objects has none, and a field with no value matches only `{"exists": false}`.
//! - Operators: `prefix` and `suffix` (a string, or `{"equals-ignore-case": ..}`),
//!   `equals-ignore-case`, `wildcard`, `anything-but` (a string, a number, a list of only
//!   strings or only numbers, or `{"prefix"|"suffix"|"equals-ignore-case"|"wildcard": ..}`),
//!   `numeric` (one comparison, or a lower and an upper bound), `exists`, `cidr`. String
//!   operators hold only for strings; `anything-but` holds for every value its inner test
//!   rejects, numbers and `null` included, as in Ruler where a non-string can never equal or
//!   start with a quoted string.
//!
//! A pattern EventBridge would refuse (an unknown operator, a bad operand, a scalar where a
//! list belongs) is a [`PatternError`] naming where, never a silent non-match.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// A pattern EventBridge would refuse, with the path of the field it was found at.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatternError {
    #[error("an event pattern is a JSON object, not {found}")]
    NotAnObject { found: &'static str },
    #[error("at `{path}`: a field's value is an object or a list of values, not {found}")]
    NotAListOrObject { path: String, found: &'static str },
    #[error("at `{path}`: the list of values is empty; EventBridge needs at least one")]
    EmptyList { path: String },
    #[error(
        "at `{path}`: unknown operator `{operator}`; EventBridge knows prefix, suffix, \
         anything-but, numeric, exists, equals-ignore-case, wildcard and cidr"
    )]
    UnknownOperator { path: String, operator: String },
    #[error("at `{path}`: an operator is an object with exactly one key, found {keys} keys")]
    OperatorShape { path: String, keys: usize },
    #[error("at `{path}`: `{operator}` {problem}")]
    BadOperand {
        path: String,
        operator: &'static str,
        problem: String,
    },
    #[error(
        "at `{path}`: a value in the list is {found}; only strings, numbers, booleans, null and operators are"
    )]
    BadValue { path: String, found: &'static str },
    #[error("at `{path}`: `$or` takes a list of at least two patterns (objects)")]
    BadOr { path: String },
}

/// Whether `pattern` matches `event` as EventBridge decides it.
pub fn matches(pattern: &Value, event: &Value) -> Result<bool, PatternError> {
    Ok(Pattern::parse(pattern)?.matches(event))
}

/// True when some field the pattern names sits inside an array of objects in this event, i.e.
/// moto's matcher cannot evaluate the pattern on it.
///
/// moto keys its flattened event by dotted path and stops at arrays, so it cannot see a field
/// under an array of objects, nor look inside nested arrays; a leaf whose value is such an
/// array is compared as a whole list. Any of those makes moto's answer meaningless. The
/// pattern is walked structurally, so this never fails, even on a pattern [`matches`] refuses.
pub fn needs_array_flattening(pattern: &Value, event: &Value) -> bool {
    pattern
        .as_object()
        .is_some_and(|p| walk_for_arrays(p, event.as_object()))
}

fn walk_for_arrays(pattern: &Map<String, Value>, event: Option<&Map<String, Value>>) -> bool {
    pattern.iter().any(|(key, sub)| {
        if key == "$or"
            && let Value::Array(alternatives) = sub
        {
            return alternatives
                .iter()
                .filter_map(Value::as_object)
                .any(|alt| walk_for_arrays(alt, event));
        }
        match (sub, event.and_then(|e| e.get(key))) {
            (_, Some(Value::Array(items))) => items.iter().any(|i| i.is_object() || i.is_array()),
            (Value::Object(nested), Some(Value::Object(child))) => {
                walk_for_arrays(nested, Some(child))
            }
            _ => false,
        }
    })
}

/// A pattern checked once and evaluated against any number of events.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: Node,
}

impl Pattern {
    /// Checks `pattern` as EventBridge would when the rule is created.
    pub fn parse(pattern: &Value) -> Result<Pattern, PatternError> {
        match pattern {
            Value::Object(map) => Ok(Pattern {
                root: Node::parse(map, "")?,
            }),
            other => Err(PatternError::NotAnObject { found: kind(other) }),
        }
    }

    /// Whether this pattern matches `event`.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(event.as_object())
    }
}

/// One level of a pattern: its fields (all must match) and its `$or` groups (one of each).
#[derive(Debug, Clone, PartialEq)]
struct Node {
    fields: Vec<(String, Field)>,
    any_of: Vec<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Nested(Node),
    Leaf(Vec<Matcher>),
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Node {
    fn parse(map: &Map<String, Value>, path: &str) -> Result<Node, PatternError> {
        let mut node = Node {
            fields: Vec::new(),
            any_of: Vec::new(),
        };
        for (key, value) in map {
            let here = join(path, key);
            match (key.as_str(), value) {
                ("$or", Value::Array(alternatives)) => {
                    // Ruler reads `$or` as OR only with two or more objects; EventBridge refuses
                    // anything else under that name rather than guess.
                    let bad = || PatternError::BadOr { path: here.clone() };
                    if alternatives.len() < 2 {
                        return Err(bad());
                    }
                    let group = alternatives
                        .iter()
                        .map(|alt| match alt {
                            Value::Object(m) => Node::parse(m, path),
                            _ => Err(bad()),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    node.any_of.push(group);
                }
                (_, Value::Object(nested)) => {
                    node.fields
                        .push((key.clone(), Field::Nested(Node::parse(nested, &here)?)));
                }
                (_, Value::Array(values)) => {
                    if values.is_empty() {
                        return Err(PatternError::EmptyList { path: here });
                    }
                    let matchers = values
                        .iter()
                        .map(|v| Matcher::parse(v, &here))
                        .collect::<Result<Vec<_>, _>>()?;
                    node.fields.push((key.clone(), Field::Leaf(matchers)));
                }
                (_, other) => {
                    return Err(PatternError::NotAListOrObject {
                        path: here,
                        found: kind(other),
                    });
                }
            }
        }
        Ok(node)
    }

    /// `event` is the object at this level, or `None` when there is none (the field is
    /// missing or not an object), in which case only `exists: false` leaves can hold.
    fn matches(&self, event: Option<&Map<String, Value>>) -> bool {
        self.fields.iter().all(|(key, field)| {
            let value = event.and_then(|e| e.get(key));
            match field {
                Field::Nested(node) => {
                    let mut objects = Vec::new();
                    if let Some(v) = value {
                        objects_in(v, &mut objects);
                    }
                    if objects.is_empty() {
                        node.matches(None)
                    } else {
                        // One element must satisfy the whole sub-pattern: array consistency.
                        objects.into_iter().any(|o| node.matches(Some(o)))
                    }
                }
                Field::Leaf(matchers) => {
                    let mut values = Vec::new();
                    if let Some(v) = value {
                        leaf_values(v, &mut values);
                    }
                    matchers.iter().any(|m| m.matches(&values))
                }
            }
        }) && self
            .any_of
            .iter()
            .all(|group| group.iter().any(|alt| alt.matches(event)))
    }
}

/// The objects a nested pattern can descend into: the value itself, or every object in it
/// when it is an array (nested arrays crushed out too).
fn objects_in<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match v {
        Value::Object(m) => out.push(m),
        Value::Array(items) => items.iter().for_each(|i| objects_in(i, out)),
        _ => {}
    }
}

/// The leaf values of a field: a scalar (null included), or every scalar in an array. Objects
/// are intermediate nodes and carry no value of their own.
fn leaf_values<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(_) => {}
        Value::Array(items) => items.iter().for_each(|i| leaf_values(i, out)),
        scalar => out.push(scalar),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One entry of a field's list.
#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix(Text),
    Suffix(Text),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(Vec<(Cmp, f64)>),
    Exists(bool),
    Cidr(Cidr),
}

/// A string operand, compared exactly or ignoring case.
#[derive(Debug, Clone, PartialEq)]
struct Text {
    text: String,
    ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    /// Only strings or only numbers.
    Values(Vec<Value>),
    Prefix(String),
    Suffix(String),
    IgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

/// Ruler's numeric range: values outside it cannot be compared, so EventBridge refuses them.
const NUMERIC_LIMIT: f64 = 5.0e9;

impl Matcher {
    fn parse(v: &Value, path: &str) -> Result<Matcher, PatternError> {
        let op = match v {
            Value::Object(op) => op,
            Value::Array(_) => {
                return Err(PatternError::BadValue {
                    path: path.to_owned(),
                    found: "a list",
                });
            }
            scalar => return Ok(Matcher::Exact(scalar.clone())),
        };
        let mut entries = op.iter();
        let (Some((name, arg)), None) = (entries.next(), entries.next()) else {
            return Err(PatternError::OperatorShape {
                path: path.to_owned(),
                keys: op.len(),
            });
        };
        let bad = |operator: &'static str, problem: &str| PatternError::BadOperand {
            path: path.to_owned(),
            operator,
            problem: problem.to_owned(),
        };
        match name.as_str() {
            "prefix" => text_operand(arg).map(Matcher::Prefix).ok_or_else(|| {
                bad(
                    "prefix",
                    "takes a string or {\"equals-ignore-case\": string}",
                )
            }),
            "suffix" => text_operand(arg).map(Matcher::Suffix).ok_or_else(|| {
                bad(
                    "suffix",
                    "takes a string or {\"equals-ignore-case\": string}",
                )
            }),
            "equals-ignore-case" => arg
                .as_str()
                .map(|s| Matcher::EqualsIgnoreCase(s.to_owned()))
                .ok_or_else(|| bad("equals-ignore-case", "takes a string")),
            "wildcard" => {
                let text = arg
                    .as_str()
                    .ok_or_else(|| bad("wildcard", "takes a string"))?;
                Wildcard::parse(text)
                    .map(Matcher::Wildcard)
                    .map_err(|problem| bad("wildcard", problem))
            }
            "anything-but" => AnythingBut::parse(arg)
                .map(Matcher::AnythingBut)
                .map_err(|problem| bad("anything-but", &problem)),
            "numeric" => parse_numeric(arg)
                .map(Matcher::Numeric)
                .map_err(|problem| bad("numeric", problem)),
            "exists" => arg
                .as_bool()
                .map(Matcher::Exists)
                .ok_or_else(|| bad("exists", "takes true or false")),
            "cidr" => {
                let text = arg.as_str().ok_or_else(|| bad("cidr", "takes a string"))?;
                Cidr::parse(text)
                    .map(Matcher::Cidr)
                    .ok_or_else(|| bad("cidr", "takes an IPv4 or IPv6 block like 10.0.0.0/24"))
            }
            other => Err(PatternError::UnknownOperator {
                path: path.to_owned(),
                operator: other.to_owned(),
            }),
        }
    }

    /// Whether this entry holds for a field whose leaf values are `values` (none when the
    /// field is missing or not a leaf).
    fn matches(&self, values: &[&Value]) -> bool {
        match self {
            Matcher::Exists(want) => values.is_empty() != *want,
            other => values.iter().any(|v| other.holds_for(v)),
        }
    }

    fn holds_for(&self, v: &Value) -> bool {
        match self {
            Matcher::Exact(want) => same_value(want, v),
            Matcher::Prefix(t) => v.as_str().is_some_and(|s| t.is_prefix_of(s)),
            Matcher::Suffix(t) => v.as_str().is_some_and(|s| t.is_suffix_of(s)),
            Matcher::EqualsIgnoreCase(want) => v.as_str().is_some_and(|s| eq_ignore_case(s, want)),
            Matcher::Wildcard(w) => v.as_str().is_some_and(|s| w.matches(s)),
            Matcher::AnythingBut(but) => !but.excludes(v),
            Matcher::Numeric(bounds) => v
                .as_f64()
                .is_some_and(|x| bounds.iter().all(|(cmp, n)| cmp.holds(x, *n))),
            Matcher::Exists(_) => true,
            Matcher::Cidr(block) => v
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|ip| block.contains(ip)),
        }
    }
}

/// JSON equality, numbers by value (`5` is `5.0`), never across types.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

fn text_operand(arg: &Value) -> Option<Text> {
    match arg {
        Value::String(s) => Some(Text {
            text: s.clone(),
            ignore_case: false,
        }),
        Value::Object(m) if m.len() == 1 => m
            .get("equals-ignore-case")
            .and_then(Value::as_str)
            .map(|s| Text {
                text: s.to_lowercase(),
                ignore_case: true,
            }),
        _ => None,
    }
}

impl Text {
    fn is_prefix_of(&self, s: &str) -> bool {
        if self.ignore_case {
            s.to_lowercase().starts_with(&self.text)
        } else {
            s.starts_with(&self.text)
        }
    }

    fn is_suffix_of(&self, s: &str) -> bool {
        if self.ignore_case {
            s.to_lowercase().ends_with(&self.text)
        } else {
            s.ends_with(&self.text)
        }
    }
}

impl AnythingBut {
    fn parse(arg: &Value) -> Result<AnythingBut, String> {
        let strings = |v: &Value| -> Option<Vec<String>> {
            match v {
                Value::String(s) => Some(vec![s.clone()]),
                Value::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => None,
            }
        };
        match arg {
            Value::String(_) | Value::Number(_) => Ok(AnythingBut::Values(vec![arg.clone()])),
            Value::Array(items) => {
                let all_strings = items.iter().all(Value::is_string);
                let all_numbers = items.iter().all(Value::is_number);
                if items.is_empty() || !(all_strings || all_numbers) {
                    return Err("takes a non-empty list of only strings or only numbers".into());
                }
                Ok(AnythingBut::Values(items.clone()))
            }
            Value::Object(m) if m.len() == 1 => {
                let (name, inner) = m.iter().next().ok_or("takes one inner operator")?;
                match name.as_str() {
                    "prefix" => inner
                        .as_str()
                        .map(|s| AnythingBut::Prefix(s.to_owned()))
                        .ok_or_else(|| "{\"prefix\": ..} takes a string".into()),
                    "suffix" => inner
                        .as_str()
                        .map(|s| AnythingBut::Suffix(s.to_owned()))
                        .ok_or_else(|| "{\"suffix\": ..} takes a string".into()),
                    "equals-ignore-case" => {
                        strings(inner).map(AnythingBut::IgnoreCase).ok_or_else(|| {
                            "{\"equals-ignore-case\": ..} takes a string or a list of strings"
                                .into()
                        })
                    }
                    "wildcard" => {
                        let texts = strings(inner).ok_or_else(|| {
                            "{\"wildcard\": ..} takes a string or a list of strings".to_owned()
                        })?;
                        texts
                            .iter()
                            .map(|t| Wildcard::parse(t).map_err(str::to_owned))
                            .collect::<Result<Vec<_>, _>>()
                            .map(AnythingBut::Wildcard)
                    }
                    other => Err(format!(
                        "cannot take `{other}`; it takes prefix, suffix, equals-ignore-case or \
                         wildcard"
                    )),
                }
            }
            _ => Err("takes a string, a number, a list of either, or one inner operator".into()),
        }
    }

    /// Whether `v` is one of the values excluded. Only strings can have a prefix, a suffix,
    /// a case or a wildcard shape, so every other value passes those.
    fn excludes(&self, v: &Value) -> bool {
        match self {
            AnythingBut::Values(values) => values.iter().any(|x| same_value(x, v)),
            AnythingBut::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            AnythingBut::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            AnythingBut::IgnoreCase(values) => v
                .as_str()
                .is_some_and(|s| values.iter().any(|x| eq_ignore_case(s, x))),
            AnythingBut::Wildcard(ws) => {
                v.as_str().is_some_and(|s| ws.iter().any(|w| w.matches(s)))
            }
        }
    }
}

impl Cmp {
    fn holds(self, x: f64, n: f64) -> bool {
        match self {
            Cmp::Lt => x < n,
            Cmp::Le => x <= n,
            Cmp::Eq => x == n,
            Cmp::Ge => x >= n,
            Cmp::Gt => x > n,
        }
    }
}

fn parse_numeric(arg: &Value) -> Result<Vec<(Cmp, f64)>, &'static str> {
    const SHAPE: &str = "takes [op, number] or [lower op, number, upper op, number], op one of \
                         <, <=, =, >=, >";
    let items = arg.as_array().ok_or(SHAPE)?;
    if items.len() != 2 && items.len() != 4 {
        return Err(SHAPE);
    }
    let bounds = items
        .chunks(2)
        .map(|pair| {
            let cmp = match pair[0].as_str() {
                Some("<") => Cmp::Lt,
                Some("<=") => Cmp::Le,
                Some("=") => Cmp::Eq,
                Some(">=") => Cmp::Ge,
                Some(">") => Cmp::Gt,
                _ => return Err(SHAPE),
            };
            let n = pair[1].as_f64().ok_or(SHAPE)?;
            if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&n) {
                return Err("compares only numbers between -5.0e9 and 5.0e9");
            }
            Ok((cmp, n))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let [(low, lo), (high, hi)] = bounds[..] {
        // A range is a lower bound then an upper bound, and not empty.
        let lower = matches!(low, Cmp::Gt | Cmp::Ge);
        let upper = matches!(high, Cmp::Lt | Cmp::Le);
        if !lower || !upper {
            return Err(
                "with two comparisons takes a lower bound (> or >=) then an upper bound \
                 (< or <=)",
            );
        }
        if lo >= hi {
            return Err("has a lower bound that is not below its upper bound");
        }
    }
    Ok(bounds)
}

/// A `wildcard` operand: literal runs separated by `*`.
#[derive(Debug, Clone, PartialEq)]
struct Wildcard {
    /// The literal text between stars; `parts.len() - 1` stars.
    parts: Vec<String>,
}

impl Wildcard {
    fn parse(text: &str) -> Result<Wildcard, &'static str> {
        let mut parts = vec![String::new()];
        let mut chars = text.chars().peekable();
        let mut last_star = false;
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if last_star {
                        return Err("cannot have two consecutive `*`");
                    }
                    parts.push(String::new());
                    last_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => push_last(&mut parts, escaped),
                    _ => return Err("escapes only `*` and `\\` with a backslash"),
                },
                other => push_last(&mut parts, other),
            }
            last_star = false;
        }
        Ok(Wildcard { parts })
    }

    /// Glob match: the first part anchors the start, the last the end, and the middle ones
    /// are found left to right (the leftmost fit is always safe for a `*`-only glob).
    fn matches(&self, s: &str) -> bool {
        let Some((first, rest)) = self.parts.split_first() else {
            return s.is_empty();
        };
        let Some(mut tail) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return tail.is_empty();
        };
        for part in middle {
            match tail.find(part.as_str()) {
                Some(at) => tail = &tail[at + part.len()..],
                None => return false,
            }
        }
        tail.ends_with(last.as_str())
    }
}

fn push_last(parts: &mut [String], c: char) {
    if let Some(last) = parts.last_mut() {
        last.push(c);
    }
}

/// An IP block from `cidr`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let (addr, len) = text.split_once('/')?;
        let len: u32 = len.parse().ok()?;
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                Some(Cidr::V4 {
                    net: u32::from(a) & mask,
                    mask,
                })
            }
            IpAddr::V6(a) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                Some(Cidr::V6 {
                    net: u128::from(a) & mask,
                    mask,
                })
            }
            _ => None,
        }
    }

    fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Cidr::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == net,
            (Cidr::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == net,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yes(pattern: Value, event: Value) {
        assert_eq!(
            matches(&pattern, &event),
            Ok(true),
            "{pattern} should match {event}"
        );
    }

    fn no(pattern: Value, event: Value) {
        assert_eq!(
            matches(&pattern, &event),
            Ok(false),
            "{pattern} should not match {event}"
        );
    }

    fn refused(pattern: Value) -> PatternError {
        match matches(&pattern, &json!({})) {
            Err(e) => e,
            Ok(m) => panic!("{pattern} was accepted (matched: {m})"),
        }
    }

    /// The shape of a Security Hub "Findings - Imported" event: findings is an array.
    fn security_hub(findings: Value) -> Value {
        json!({
            "source": "aws.securityhub",
            "detail-type": "Security Hub Findings - Imported",
            "detail": {"findings": findings}
        })
    }

    fn imported_rule() -> Value {
        json!({
            "source": ["aws.securityhub"],
            "detail-type": ["Security Hub Findings - Imported"],
            "detail": {"findings": {
                "Workflow": {"Status": ["NEW"]},
                "RecordState": ["ACTIVE"],
                "Severity": {"Label": ["HIGH", "CRITICAL"]},
                "ProductName": [{"anything-but": "GuardDuty"}]
            }}
        })
    }

    fn finding(status: &str, record: &str, label: &str, product: &str) -> Value {
        json!({
            "Workflow": {"Status": status},
            "RecordState": record,
            "Severity": {"Label": label},
            "ProductName": product
        })
    }

    #[test]
    fn exact_values_match_by_json_type_and_a_list_is_an_or() {
        yes(
            json!({"source": ["aws.ec2", "aws.guardduty"]}),
            json!({"source": "aws.guardduty"}),
        );
        no(
            json!({"source": ["aws.ec2"]}),
            json!({"source": "aws.ec2 "}),
        );
        no(json!({"source": ["AWS.EC2"]}), json!({"source": "aws.ec2"}));
        yes(json!({"n": [5]}), json!({"n": 5.0}));
        no(json!({"n": [5]}), json!({"n": "5"}));
        yes(json!({"b": [false]}), json!({"b": false}));
        no(json!({"b": [false]}), json!({"b": "false"}));
        yes(json!({"z": [null]}), json!({"z": null}));
        no(json!({"z": [null]}), json!({"z": "null"}));
        yes(json!({"e": [""]}), json!({"e": ""}));
        no(json!({"e": [""]}), json!({"e": null}));
    }

    #[test]
    fn every_field_must_match_and_nesting_follows_the_event() {
        let p = json!({"source": ["aws.ec2"], "detail": {"state": ["running"]}});
        yes(
            p.clone(),
            json!({"source": "aws.ec2", "detail": {"state": "running"}}),
        );
        no(
            p.clone(),
            json!({"source": "aws.ec2", "detail": {"state": "stopped"}}),
        );
        no(
            p.clone(),
            json!({"source": "aws.s3", "detail": {"state": "running"}}),
        );
        no(p, json!({"source": "aws.ec2", "state": "running"}));
    }

    #[test]
    fn a_missing_field_matches_only_exists_false() {
        no(json!({"detail": {"x": ["a"]}}), json!({"detail": {}}));
        no(
            json!({"detail": {"x": [{"anything-but": "a"}]}}),
            json!({"detail": {}}),
        );
        no(
            json!({"detail": {"x": [{"prefix": ""}]}}),
            json!({"detail": {}}),
        );
        no(json!({"detail": {"x": [{"numeric": [">", 0]}]}}), json!({}));
        yes(
            json!({"detail": {"x": [{"exists": false}]}}),
            json!({"detail": {}}),
        );
        yes(json!({"detail": {"x": [{"exists": false}]}}), json!({}));
    }

    #[test]
    fn an_array_in_the_event_matches_when_any_element_does() {
        let p = json!({"resources": ["arn:b"]});
        yes(p.clone(), json!({"resources": ["arn:a", "arn:b"]}));
        no(p, json!({"resources": ["arn:a", "arn:c"]}));
        yes(json!({"x": [3]}), json!({"x": [[1, 2], [3]]}));
        yes(
            json!({"x": [{"prefix": "ab"}]}),
            json!({"x": ["zz", "abc"]}),
        );
    }

    #[test]
    fn a_security_hub_finding_in_the_findings_array_matches_a_field_path_through_it() {
        let event = security_hub(json!([
            finding("RESOLVED", "ACTIVE", "LOW", "Inspector"),
            finding("NEW", "ACTIVE", "HIGH", "Security Hub"),
        ]));
        yes(imported_rule(), event.clone());
        // moto cannot decide this pattern on this event; the evaluator can.
        assert!(needs_array_flattening(&imported_rule(), &event));
    }

    #[test]
    fn two_findings_cannot_combine_to_satisfy_one_findings_pattern() {
        // One NEW but LOW, one HIGH but RESOLVED: no single finding is NEW and HIGH.
        let event = security_hub(json!([
            finding("NEW", "ACTIVE", "LOW", "Security Hub"),
            finding("RESOLVED", "ACTIVE", "HIGH", "Security Hub"),
        ]));
        no(imported_rule(), event);
    }

    #[test]
    fn security_hub_findings_that_are_archived_low_or_from_guardduty_do_not_match() {
        no(
            imported_rule(),
            security_hub(json!([finding("NEW", "ARCHIVED", "HIGH", "Security Hub")])),
        );
        no(
            imported_rule(),
            security_hub(json!([finding("NEW", "ACTIVE", "MEDIUM", "Security Hub")])),
        );
        no(
            imported_rule(),
            security_hub(json!([finding("NEW", "ACTIVE", "HIGH", "GuardDuty")])),
        );
        no(imported_rule(), security_hub(json!([])));
        // anything-but needs the field: a finding without ProductName is not "not GuardDuty".
        let mut bare = finding("NEW", "ACTIVE", "HIGH", "x");
        if let Some(m) = bare.as_object_mut() {
            m.remove("ProductName");
        }
        no(imported_rule(), security_hub(json!([bare])));
    }

    #[test]
    fn objects_and_arrays_of_objects_are_not_leaves_for_exists() {
        let event = security_hub(json!([finding("NEW", "ACTIVE", "HIGH", "x")]));
        no(
            json!({"detail": {"findings": [{"exists": true}]}}),
            event.clone(),
        );
        yes(
            json!({"detail": {"findings": [{"exists": false}]}}),
            event.clone(),
        );
        no(json!({"detail": [{"exists": true}]}), event.clone());
        yes(
            json!({"detail": {"findings": {"RecordState": [{"exists": true}]}}}),
            event,
        );
        no(json!({"x": [{"exists": true}]}), json!({"x": []}));
        yes(json!({"x": [{"exists": true}]}), json!({"x": null}));
    }

    #[test]
    fn prefix_matches_strings_that_start_with_it_exactly_or_ignoring_case() {
        yes(
            json!({"t": [{"prefix": "2017-10"}]}),
            json!({"t": "2017-10-02T18:43:48Z"}),
        );
        no(
            json!({"t": [{"prefix": "2017-11"}]}),
            json!({"t": "2017-10-02T18:43:48Z"}),
        );
        no(
            json!({"t": [{"prefix": "Event"}]}),
            json!({"t": "eventbridge"}),
        );
        no(json!({"t": [{"prefix": "1"}]}), json!({"t": 12}));
        let p = json!({"t": [{"prefix": {"equals-ignore-case": "EventB"}}]});
        yes(p.clone(), json!({"t": "EVENTBRIDGE"}));
        no(p, json!({"t": "SNS"}));
    }

    #[test]
    fn suffix_matches_strings_that_end_with_it_exactly_or_ignoring_case() {
        yes(json!({"f": [{"suffix": ".png"}]}), json!({"f": "a.png"}));
        no(json!({"f": [{"suffix": ".png"}]}), json!({"f": "a.PNG"}));
        let p = json!({"f": [{"suffix": {"equals-ignore-case": ".png"}}]});
        yes(p.clone(), json!({"f": "a.PNG"}));
        no(p, json!({"f": "a.jpg"}));
    }

    #[test]
    fn equals_ignore_case_matches_strings_in_any_case_only() {
        let p = json!({"s": [{"equals-ignore-case": "Alarm"}]});
        yes(p.clone(), json!({"s": "ALARM"}));
        no(p.clone(), json!({"s": "ALARMS"}));
        no(
            json!({"s": [{"equals-ignore-case": "true"}]}),
            json!({"s": true}),
        );
    }

    #[test]
    fn anything_but_a_value_or_list_matches_every_other_value() {
        let p = json!({"state": [{"anything-but": "initializing"}]});
        yes(p.clone(), json!({"state": "running"}));
        no(p.clone(), json!({"state": "initializing"}));
        yes(p, json!({"state": 3}));
        let p = json!({"x": [{"anything-but": [100, 200]}]});
        yes(p.clone(), json!({"x": 150}));
        no(p.clone(), json!({"x": 200.0}));
        // An array passes when any element is not excluded, as each element is a value.
        let p = json!({"x": [{"anything-but": ["a", "b"]}]});
        yes(p.clone(), json!({"x": ["a", "c"]}));
        no(p, json!({"x": ["a", "b"]}));
    }

    #[test]
    fn anything_but_prefix_keeps_the_stacks_own_alarms_out() {
        let p = json!({"detail": {"alarmName": [{"anything-but": {"prefix": "firebreak-"}}]}});
        yes(
            p.clone(),
            json!({"detail": {"alarmName": "ServerCpuTooHigh"}}),
        );
        no(
            p.clone(),
            json!({"detail": {"alarmName": "firebreak-ops-prod-dlq"}}),
        );
        no(p, json!({"detail": {}}));
    }

    #[test]
    fn anything_but_suffix_ignore_case_and_wildcard_exclude_what_they_describe() {
        let p = json!({"f": [{"anything-but": {"suffix": ".png"}}]});
        yes(p.clone(), json!({"f": "a.jpg"}));
        no(p, json!({"f": "a.png"}));
        let p = json!({"s": [{"anything-but": {"equals-ignore-case": ["ok", "alarm"]}}]});
        yes(p.clone(), json!({"s": "INSUFFICIENT_DATA"}));
        no(p, json!({"s": "ALARM"}));
        let p = json!({"p": [{"anything-but": {"wildcard": "*/lib/*"}}]});
        yes(p.clone(), json!({"p": "/usr/bin/x"}));
        no(p, json!({"p": "/usr/lib/x"}));
    }

    #[test]
    fn numeric_compares_json_numbers_against_one_or_two_bounds() {
        let at_least_4 = json!({"detail": {"severity": [{"numeric": [">=", 4]}]}});
        yes(at_least_4.clone(), json!({"detail": {"severity": 5}}));
        yes(at_least_4.clone(), json!({"detail": {"severity": 4.0}}));
        no(at_least_4.clone(), json!({"detail": {"severity": 2}}));
        no(at_least_4.clone(), json!({"detail": {"severity": "8"}}));
        no(at_least_4, json!({"detail": {"severity": true}}));
        let range = json!({"c": [{"numeric": [">", 0, "<=", 5]}]});
        yes(range.clone(), json!({"c": 5}));
        no(range.clone(), json!({"c": 0}));
        no(range, json!({"c": 5.5}));
        yes(
            json!({"x": [{"numeric": ["=", 3.018e2]}]}),
            json!({"x": 301.8}),
        );
        no(json!({"x": [{"numeric": ["<", 10]}]}), json!({"x": 10}));
    }

    #[test]
    fn exists_true_needs_a_leaf_value_and_false_needs_none() {
        yes(json!({"c": [{"exists": true}]}), json!({"c": 0}));
        no(json!({"c": [{"exists": true}]}), json!({"d": 0}));
        no(json!({"c": [{"exists": false}]}), json!({"c": 0}));
        yes(json!({"c": [{"exists": false}]}), json!({"c": {"c1": 100}}));
    }

    #[test]
    fn wildcard_matches_stars_anywhere_and_escapes_literally() {
        let p = json!({"s": [{"wildcard": "Simple*Service"}]});
        yes(p.clone(), json!({"s": "SimpleNotificationService"}));
        yes(p.clone(), json!({"s": "SimpleService"}));
        no(p, json!({"s": "SimpleQueue"}));
        yes(json!({"s": [{"wildcard": "*a*b*"}]}), json!({"s": "xaxbx"}));
        no(json!({"s": [{"wildcard": "*a*b"}]}), json!({"s": "xbxa"}));
        yes(json!({"s": [{"wildcard": "a\\*b"}]}), json!({"s": "a*b"}));
        no(json!({"s": [{"wildcard": "a\\*b"}]}), json!({"s": "axb"}));
        yes(json!({"s": [{"wildcard": "ab*ab"}]}), json!({"s": "abab"}));
        no(json!({"s": [{"wildcard": "ab*ab"}]}), json!({"s": "aba"}));
        no(json!({"s": [{"wildcard": "*"}]}), json!({"s": 1}));
    }

    #[test]
    fn cidr_matches_addresses_in_the_block_of_the_same_family() {
        let p = json!({"ip": [{"cidr": "10.0.0.0/24"}]});
        yes(p.clone(), json!({"ip": "10.0.0.33"}));
        no(p.clone(), json!({"ip": "10.0.1.33"}));
        no(p.clone(), json!({"ip": "::ffff:10.0.0.33"}));
        no(p, json!({"ip": "not an ip"}));
        yes(
            json!({"ip": [{"cidr": "2001:db8::/32"}]}),
            json!({"ip": "2001:db8::1"}),
        );
        no(
            json!({"ip": [{"cidr": "2001:db8::/32"}]}),
            json!({"ip": "2001:db9::1"}),
        );
        yes(
            json!({"ip": [{"cidr": "0.0.0.0/0"}]}),
            json!({"ip": "8.8.8.8"}),
        );
    }

    #[test]
    fn or_matches_when_any_alternative_does_alongside_the_other_fields() {
        let p = json!({
            "source": ["aws.cloudwatch"],
            "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]
        });
        yes(
            p.clone(),
            json!({"source": "aws.cloudwatch", "namespace": "AWS/EC2"}),
        );
        yes(
            p.clone(),
            json!({"source": "aws.cloudwatch", "metricName": "CPUUtilization"}),
        );
        no(
            p.clone(),
            json!({"source": "aws.cloudwatch", "namespace": "AWS/ES"}),
        );
        no(p, json!({"source": "aws.ec2", "namespace": "AWS/EC2"}));
        let nested = json!({"detail": {"$or": [{"a": [1]}, {"b": [2]}]}});
        yes(nested.clone(), json!({"detail": {"b": 2}}));
        no(nested, json!({"detail": {"a": 2}}));
    }

    #[test]
    fn an_unknown_operator_is_refused_with_its_name_and_path() {
        let e = refused(json!({"detail": {"state": [{"contains": "x"}]}}));
        assert_eq!(
            e,
            PatternError::UnknownOperator {
                path: "detail.state".into(),
                operator: "contains".into()
            }
        );
        assert!(e.to_string().contains("`contains`"), "{e}");
        assert!(e.to_string().contains("detail.state"), "{e}");
    }

    #[test]
    fn a_malformed_pattern_is_refused_not_treated_as_no_match() {
        assert!(matches!(
            refused(json!(["a"])),
            PatternError::NotAnObject { .. }
        ));
        assert!(matches!(
            refused(json!({"source": "aws.ec2"})),
            PatternError::NotAListOrObject { .. }
        ));
        assert!(matches!(
            refused(json!({"source": []})),
            PatternError::EmptyList { .. }
        ));
        assert!(matches!(
            refused(json!({"s": [["a"]]})),
            PatternError::BadValue { .. }
        ));
        assert!(matches!(
            refused(json!({"s": [{"prefix": "a", "suffix": "b"}]})),
            PatternError::OperatorShape { keys: 2, .. }
        ));
        assert!(matches!(
            refused(json!({"$or": [{"a": [1]}]})),
            PatternError::BadOr { .. }
        ));
        assert!(matches!(
            refused(json!({"$or": [{"a": [1]}, 2]})),
            PatternError::BadOr { .. }
        ));
        for bad in [
            json!({"prefix": 3}),
            json!({"suffix": {"ignore": "x"}}),
            json!({"equals-ignore-case": ["a"]}),
            json!({"numeric": [">", "4"]}),
            json!({"numeric": [">", 4, ">", 5]}),
            json!({"numeric": [">", 5, "<", 4]}),
            json!({"numeric": ["=", 1, "<", 4]}),
            json!({"numeric": ["~", 4]}),
            json!({"numeric": [">", 6e9]}),
            json!({"exists": "yes"}),
            json!({"anything-but": []}),
            json!({"anything-but": ["a", 1]}),
            json!({"anything-but": {"numeric": [">", 1]}}),
            json!({"anything-but": true}),
            json!({"wildcard": "a**b"}),
            json!({"wildcard": "a\\b"}),
            json!({"cidr": "10.0.0.0/33"}),
            json!({"cidr": "10.0.0.0"}),
        ] {
            let e = refused(json!({"f": [bad.clone()]}));
            assert!(matches!(e, PatternError::BadOperand { .. }), "{bad}: {e:?}");
        }
    }

    #[test]
    fn moto_can_decide_patterns_on_nested_objects_and_arrays_of_scalars() {
        let alarm = json!({"detail": {"state": {"value": "ALARM"}}, "resources": ["arn:a"]});
        let p = json!({"detail": {"state": {"value": ["ALARM"]}}, "resources": ["arn:a"]});
        assert!(!needs_array_flattening(&p, &alarm));
        // A pattern on a field the event does not have is decidable: moto sees it missing too.
        assert!(!needs_array_flattening(
            &json!({"detail": {"findings": {"x": ["a"]}}}),
            &alarm
        ));
        // Only fields the pattern names count: an array of objects elsewhere is no matter.
        let with_array = json!({"source": "s", "detail": {"findings": [{"x": "a"}]}});
        assert!(!needs_array_flattening(
            &json!({"source": ["s"]}),
            &with_array
        ));
    }

    #[test]
    fn moto_cannot_decide_a_field_under_or_at_an_array_of_objects_even_inside_or() {
        let event = json!({"detail": {"findings": [{"RecordState": "ACTIVE"}]}, "x": [[1]]});
        assert!(needs_array_flattening(
            &json!({"detail": {"findings": {"RecordState": ["ACTIVE"]}}}),
            &event
        ));
        assert!(needs_array_flattening(
            &json!({"detail": {"findings": [{"exists": true}]}}),
            &event
        ));
        assert!(needs_array_flattening(
            &json!({"detail": {"$or": [{"a": ["b"]}, {"findings": {"RecordState": ["ACTIVE"]}}]}}),
            &event
        ));
        assert!(needs_array_flattening(&json!({"x": [1]}), &event));
        // Even on a pattern `matches` refuses: the walk is structural.
        assert!(needs_array_flattening(
            &json!({"detail": {"findings": {"RecordState": [{"nope": 1}]}}}),
            &event
        ));
    }
}
