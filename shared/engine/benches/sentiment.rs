//! `cargo bench -p tessera-engine --bench sentiment`
//!
//! Cost of the VADER `lexicon` sentiment step (`tessera_engine::sentiment`) on one core, in two
//! figures, each the median of `ROUNDS` (default 5) runs, CPU time of this thread:
//! - scoring rate: MB of free text per CPU-second, each field scored, its score formatted with
//!   four digits and labelled (what the derive step does per row), over review-like sentences
//!   of 3-20 words (lexicon words, negations, boosters, capitals, punctuation, ~3% emoji);
//! - share of the profile-only job: an in-memory CSV shaped like `benches/engine.rs`'s bench file
//!   (id, name, score, amount, day, active, category, comment), run through the chunk worker
//!   with profile and outputs (the profile-only job), against scoring its `comment` column.
//!   Twice: with the engine bench's own comment column (1-6 filler words) and with the comment
//!   column holding the review sentences. Goal: sentiment CPU <= 30% of the job's.
//!
//! `BYTES` sets the CSV size (default 64 MiB); `SENTIMENT_ONLY=1` skips the profile job (for
//! `perf` runs of the scorer alone).

use std::hint::black_box;

use tessera_engine::chunk::ChunkOptions;
use tessera_engine::dialect::{sniff_with_size, DialectOverrides};
use tessera_engine::file::run_chunk;
use tessera_engine::sentiment::{Analyzer, Label, ScoreText};
use tessera_engine::split::ChunkTask;

#[path = "common/bench_file.rs"]
mod bench_file;
use bench_file::{thread_cpu_seconds as cpu_seconds, Rng};

const SENTIMENT: &[&str] = &[
    "good",
    "great",
    "excellent",
    "love",
    "loved",
    "amazing",
    "happy",
    "nice",
    "fast",
    "helpful",
    "friendly",
    "perfect",
    "best",
    "awesome",
    "recommend",
    "bad",
    "terrible",
    "awful",
    "poor",
    "slow",
    "broken",
    "worst",
    "hate",
    "disappointed",
    "rude",
    "horrible",
    "useless",
    "refund",
    "problem",
    "wrong",
    "cheap",
    "fine",
    "okay",
    "easy",
    "hard",
];
const FILLER: &[&str] = &[
    "the", "a", "it", "was", "is", "product", "delivery", "service", "staff", "price", "quality",
    "and", "to", "for", "with", "my", "order", "we", "they", "after", "two", "weeks", "this",
    "box", "arrived", "item", "again", "would", "buy", "of", "at", "app", "support", "size",
];
const MODIFIER: &[&str] = &[
    "not",
    "never",
    "very",
    "really",
    "so",
    "extremely",
    "kind of",
    "barely",
    "don't",
    "isn't",
    "but",
    "no",
    "totally",
    "at least",
];
const END: &[&str] = &[
    "", ".", ".", ".", "!", "!!", "?", "...", " :)", " 😀", " 👍",
];
/// The engine bench's comment words (`benches/engine.rs`).
const ENGINE_WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "Zürich", "東京", "naïve", "north", "south", "quartz",
    "lorem", "ipsum", "dolor", "sit", "amet",
];

fn review(r: &mut Rng, out: &mut String) {
    let n = 3 + r.index(18);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        let w = match r.index(10) {
            0..=2 => r.pick(SENTIMENT),
            3 => r.pick(MODIFIER),
            _ => r.pick(FILLER),
        };
        if r.index(40) == 0 {
            out.push_str(&w.to_uppercase());
        } else if i == 0 {
            out.push_str(&w[..1].to_uppercase());
            out.push_str(&w[1..]);
        } else {
            out.push_str(w);
        }
        if r.index(12) == 0 {
            out.push(',');
        }
    }
    out.push_str(r.pick(END));
}

fn engine_comment(r: &mut Rng, out: &mut String) {
    let n = 1 + r.index(6);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(r.pick(ENGINE_WORDS));
    }
}

/// A CSV shaped like the engine bench file, with `comment` made by `comment`; also returns
/// the comment fields, as the parser would hand them over.
fn csv(bytes: usize, comment: fn(&mut Rng, &mut String)) -> (Vec<u8>, Vec<String>) {
    use std::fmt::Write as _;
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut data = b"id,name,score,amount,day,active,category,comment\n".to_vec();
    let mut comments = Vec::new();
    let mut line = String::new();
    let mut id = 0u64;
    while data.len() < bytes {
        id += 1;
        line.clear();
        let (a, b) = (r.pick(ENGINE_WORDS), r.pick(ENGINE_WORDS));
        let _ = write!(
            line,
            "{id},{a} {b},{},{}.{:02},20{:02}-{:02}-{:02},{},{},",
            r.index(1000),
            r.index(100_000),
            r.index(100),
            r.index(30),
            1 + r.index(12),
            1 + r.index(28),
            ["true", "false"][r.index(2)],
            ["A", "B", "C", "D"][r.index(4)],
        );
        let mut c = String::new();
        comment(&mut r, &mut c);
        if c.contains([',', '"']) {
            let _ = write!(line, "\"{}\"", c.replace('"', "\"\""));
        } else {
            line.push_str(&c);
        }
        line.push('\n');
        data.extend_from_slice(line.as_bytes());
        comments.push(c);
    }
    (data, comments)
}

/// CPU seconds of the profile-only job (profile + clean/rejected outputs to a sink).
fn profile_job(data: &[u8]) -> f64 {
    let sn = sniff_with_size(
        &data[..data.len().min(1 << 20)],
        data.len() as u64,
        &DialectOverrides::default(),
    )
    .expect("sniff");
    let task = ChunkTask {
        index: 0,
        start: sn.header_len,
        end: data.len() as u64,
        start_in_quotes: Some(false),
    };
    let opts = ChunkOptions {
        emit_rows: true,
        ..ChunkOptions::default()
    };
    let t0 = cpu_seconds();
    let r = run_chunk(
        data,
        data.len() as u64,
        &task,
        &sn.dialect,
        &sn.columns,
        &opts,
        256 * 1024,
        &mut std::io::sink(),
        &mut std::io::sink(),
    )
    .expect("profile job");
    black_box(r.profile.report());
    cpu_seconds() - t0
}

/// CPU seconds to score, format and label every field.
fn sentiment(fields: &[String]) -> f64 {
    let mut a = Analyzer::new();
    let t0 = cpu_seconds();
    let mut labels = [0u64; 3];
    for f in fields {
        let c = a.compound(f.as_bytes());
        black_box(ScoreText::of(c));
        labels[Label::of(c) as usize] += 1;
    }
    black_box(labels);
    cpu_seconds() - t0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes; nothing to list
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let bytes = env("BYTES", 64 << 20);
    let rounds = env("ROUNDS", 5).max(1);
    let skip_profile = std::env::var_os("SENTIMENT_ONLY").is_some();
    Analyzer::new(); // build the word table outside the timings
    for (name, comment) in [
        ("reviews", review as fn(&mut Rng, &mut String)),
        ("engine-words", engine_comment),
    ] {
        let (data, fields) = csv(bytes, comment);
        let text: usize = fields.iter().map(String::len).sum();
        let mb = data.len() as f64 / 1e6;
        let (mut prof, mut sent) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            prof.push(if skip_profile {
                f64::NAN
            } else {
                profile_job(&data)
            });
            sent.push(sentiment(&fields));
        }
        let (p, s) = (median(prof), median(sent));
        println!(
            "comment={name}: {} rows, CSV {mb:.1} MB, comment text {:.1} MB (avg {:.0} B/field); \
             scoring {:.0} MB text/CPU-s ({:.0} ns/field); profile-only job {:.0} MB/CPU-s; \
             sentiment CPU = {:.0}% of the job's; job with sentiment {:.0} MB/CPU-s ({:.0}% of profile-only)",
            fields.len(),
            text as f64 / 1e6,
            text as f64 / fields.len() as f64,
            text as f64 / 1e6 / s,
            s * 1e9 / fields.len() as f64,
            mb / p,
            100.0 * s / p,
            mb / (p + s),
            100.0 * p / (p + s),
        );
    }
}
