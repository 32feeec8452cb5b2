//! Finding the line of a key in a playbook's text, for the few errors serde cannot place.
//!
//! Most errors get their line from serde_yaml_ng (see `de.rs`). The exceptions are checks that
//! need the whole playbook or the whole set (a duplicate priority across two files, `close.on`
//! against the match section) and so run after deserialization, when no position is left. For
//! those, this module walks the text by indentation, which is exact for the block style that
//! playbooks are written in. Flow style (`close: {on: manual}`) resolves to the nearest block
//! key found (`close:`), and a key that is not written at all (a default) to its parent's line,
//! so an error is always placed near its cause.

#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    /// 1-based.
    number: usize,
    indent: usize,
    text: &'a str,
}

/// The 1-based line of the deepest key of `path` that is written in block style in `source`.
pub(crate) fn locate(source: &str, path: &[&str]) -> Option<usize> {
    let mut scope: Vec<Line<'_>> = content_lines(source).collect();
    let mut found = None;
    for key in path {
        let Some(base) = scope.iter().map(|l| l.indent).min() else {
            break;
        };
        let Some(at) = scope
            .iter()
            .position(|l| l.indent == base && key_of(l.text) == Some(*key))
        else {
            break;
        };
        found = Some(scope[at].number);
        // A block sequence may sit at its key's own indentation (`key:\n- item`).
        scope = scope[at + 1..]
            .iter()
            .take_while(|l| l.indent > base || (l.indent == base && is_item(l.text)))
            .copied()
            .collect();
    }
    found
}

/// The line of the `nth` (1-based) top-level occurrence of `key`: serde reports a duplicate
/// key at the start of its mapping, and the useful line is the repeat.
pub(crate) fn nth_top_level_key(source: &str, key: &str, nth: usize) -> Option<usize> {
    let lines: Vec<Line<'_>> = content_lines(source).collect();
    let base = lines.iter().map(|l| l.indent).min()?;
    lines
        .iter()
        .filter(|l| l.indent == base && key_of(l.text) == Some(key))
        .nth(nth.checked_sub(1)?)
        .map(|l| l.number)
}

/// The line of the `---` that starts a second document, if there is one.
pub(crate) fn second_document(source: &str) -> Option<usize> {
    let mut seen_content = false;
    for (i, raw) in source.lines().enumerate() {
        let text = raw.trim_end();
        if text == "---" || text.starts_with("--- ") {
            if seen_content {
                return Some(i + 1);
            }
        } else if !text.trim_start().is_empty() && !text.trim_start().starts_with('#') {
            seen_content = true;
        }
    }
    None
}

/// Whether the text holds no YAML content at all (blank, comments, document markers).
pub(crate) fn is_blank(source: &str) -> bool {
    content_lines(source).next().is_none()
}

fn content_lines(source: &str) -> impl Iterator<Item = Line<'_>> {
    source.lines().enumerate().filter_map(|(i, raw)| {
        let text = raw.trim_start();
        let text = text.trim_end();
        let skip = text.is_empty()
            || text.starts_with('#')
            || text == "---"
            || text.starts_with("--- ")
            || text == "...";
        (!skip).then(|| Line {
            number: i + 1,
            indent: raw.len() - raw.trim_start().len(),
            text,
        })
    })
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// The key a `key: value` line starts with, unquoted.
fn key_of(text: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(rest) = text.strip_prefix(quote) {
            let end = rest.find(quote)?;
            return rest[end + 1..]
                .trim_start()
                .starts_with(':')
                .then_some(&rest[..end]);
        }
    }
    let colon = text
        .match_indices(':')
        .find(|(i, _)| {
            let next = text.as_bytes().get(i + 1);
            next.is_none() || next == Some(&b' ') || next == Some(&b'\t')
        })
        .map(|(i, _)| i)?;
    Some(text[..colon].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
name: a          # 2
priority: 10     # 3
match:
  finding_types: ['Backdoor:EC2/*']
remediate:
  - action: ec2.snapshot   # 7
  -   action: ec2.isolate  # 8
      with:                # 9
        protect: true      # 10
  -
    action: notify         # 12
close: {on: manual}        # 13
\"quoted\": 1              # 14
list:
- a                        # 16
- b                        # 17
";

    #[test]
    fn finds_top_level_keys() {
        assert_eq!(locate(DOC, &["name"]), Some(2));
        assert_eq!(locate(DOC, &["priority"]), Some(3));
        assert_eq!(locate(DOC, &["quoted"]), Some(14));
    }

    #[test]
    fn finds_nested_keys() {
        assert_eq!(locate(DOC, &["match", "finding_types"]), Some(5));
    }

    #[test]
    fn falls_back_to_the_deepest_key_found() {
        assert_eq!(locate(DOC, &["close", "on"]), Some(13));
        assert_eq!(locate(DOC, &["remediate", "action"]), Some(6));
        assert_eq!(locate(DOC, &["nope"]), None);
    }

    #[test]
    fn does_not_take_a_colon_inside_a_value_for_a_key() {
        assert_eq!(key_of("'Backdoor:EC2/*': x"), Some("Backdoor:EC2/*"));
        assert_eq!(key_of("name: a:b"), Some("name"));
        assert_eq!(key_of("arn:aws:x"), None);
    }

    #[test]
    fn finds_repeated_keys_and_second_documents() {
        let src = "name: a\npriority: 1\nname: b\n---\nname: c\n";
        assert_eq!(nth_top_level_key(src, "name", 2), Some(3));
        assert_eq!(second_document(src), Some(4));
        assert_eq!(second_document("---\nname: a\n"), None);
    }

    #[test]
    fn blank_means_no_content() {
        assert!(is_blank("# only\n\n---\n"));
        assert!(!is_blank("# c\nname: a\n"));
    }
}
