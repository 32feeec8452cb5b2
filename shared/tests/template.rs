//! The template mounts the playbooks where the functions look for them.

use std::path::Path;

use firebreak_shared::config::PLAYBOOKS_DIR_ENV;
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml is readable");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

#[test]
fn the_playbooks_layer_holds_infra_playbooks_at_the_directory_the_functions_read() {
    let t = template();
    let content = t["Resources"]["PlaybooksLayer"]["Properties"]["ContentUri"]
        .as_str()
        .expect("PlaybooksLayer has a ContentUri");
    let dir = t["Globals"]["Function"]["Environment"]["Variables"][PLAYBOOKS_DIR_ENV]
        .as_str()
        .expect("every function is told where the playbooks are");
    // A layer's content is mounted under /opt.
    let inside_layer = dir
        .strip_prefix("/opt/")
        .expect("the playbooks directory is inside the layer mount");
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(content)
        .join(inside_layer);
    assert!(
        local.join("ec2-compromise.yaml").is_file(),
        "{} does not hold the playbooks",
        local.display()
    );
    firebreak_shared::config::playbooks_from(Some(&local)).expect("the shipped playbooks load");
}

#[test]
fn every_function_carries_the_playbooks_layer() {
    let t = template();
    let layers = t["Globals"]["Function"]["Layers"]
        .as_sequence()
        .expect("Globals.Function.Layers");
    assert!(
        layers
            .iter()
            .any(|l| format!("{l:?}").contains("PlaybooksLayer")),
        "{layers:?}"
    );
}
