//! Triage throughput over the real fixture mix: parse every envelope, match the starter
//! playbooks, decide. Criterion reports elements/s, i.e. events per second on one core.

use std::path::{Path, PathBuf};

use chrono::DateTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use firebreak_shared::playbook::PlaybookSet;
use firebreak_shared::signal;
use firebreak_shared::triage;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .flat_map(|family| {
            std::fs::read_dir(family.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), bytes)
        })
        .collect()
}

fn bench_triage(c: &mut Criterion) {
    let playbooks = PlaybookSet::starter();
    let received = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    // The mix is what Firebreak would really be sent: the events it understands. Refusals are
    // cheaper and would flatter the figure.
    let events: Vec<Vec<u8>> = fixtures()
        .into_iter()
        .filter(|(_, bytes)| signal::parse(bytes, received).is_ok())
        .map(|(_, bytes)| bytes)
        .collect();
    let bytes: usize = events.iter().map(Vec::len).sum();
    eprintln!(
        "triage mix: {} events, {} bytes, {} bytes/event on average",
        events.len(),
        bytes,
        bytes / events.len().max(1)
    );

    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("parse_match_decide_fixture_mix", |b| {
        b.iter(|| {
            let mut opened = 0usize;
            for event in &events {
                if let Ok(signals) = signal::parse(std::hint::black_box(event), received) {
                    for s in &signals {
                        let d = triage::decide(s, &playbooks);
                        opened += usize::from(d.outcome == triage::Outcome::Incident);
                    }
                }
            }
            std::hint::black_box(opened)
        })
    });
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("parse_only_fixture_mix", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for event in &events {
                if let Ok(signals) = signal::parse(std::hint::black_box(event), received) {
                    n += signals.len();
                }
            }
            std::hint::black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_triage);
criterion_main!(benches);
