//! The complete playbooks shown in the README and in docs/playbooks.md are valid, so a reader
//! who copies one gets a playbook that loads.

use std::path::{Path, PathBuf};

use firebreak_shared::playbook::PlaybookSet;

/// Fenced YAML blocks that are whole playbooks: they start a line with `name:` and `priority:`
/// and elide nothing (`{...}` marks a field reference, not a playbook).
fn playbook_blocks(doc: &str) -> Vec<(usize, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{doc}: {e}"));
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some((i + 2, String::new())),
            (Some(_), "```") => {
                if let Some((start, body)) = current.take() {
                    let whole = body.lines().any(|l| l.starts_with("name:"))
                        && body.lines().any(|l| l.starts_with("priority:"))
                        && !body.contains("...");
                    if whole {
                        blocks.push((start, body));
                    }
                }
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn assert_blocks_load(doc: &str) {
    let blocks = playbook_blocks(doc);
    assert!(!blocks.is_empty(), "{doc} shows no complete playbook");
    for (line, body) in blocks {
        let name = PathBuf::from(format!("{doc}:{line}"));
        if let Err(errors) = PlaybookSet::from_sources([(name, body)]) {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!(
                "the playbook at {doc}:{line} is invalid:\n{}",
                lines.join("\n")
            );
        }
    }
}

#[test]
fn the_readme_playbook_is_valid() {
    assert_blocks_load("README.md");
}

#[test]
fn the_worked_example_in_the_playbook_docs_is_valid() {
    assert_blocks_load("docs/playbooks.md");
}
