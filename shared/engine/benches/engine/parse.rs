//! The bare-parse comparison of the engine bench (`TESSERA_BENCH_PARSE_ONLY=1`): our parser
//! (the kernel `Parser::new` picks), the same state machine without the structural index
//! (`Kernel::Scalar`, the parser before the index), the portable kernel, and the csv crate's
//! `ByteRecord` loop, in interleaved rounds on the bench file and on a generated file shaped
//! like a real export (`generate_export`).

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{run_child, Rng, MIB};

const REGIONS: [&str; 20] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
    "me-south-1",
    "af-south-1",
    "il-central-1",
];
const FIRST: [&str; 16] = [
    "anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas", "kim",
    "liam", "mia", "noah", "olga", "paul",
];
const DOMAINS: [&str; 8] = [
    "example.com",
    "mail.test",
    "corp.example",
    "shop.test",
    "acme.io",
    "post.example",
    "web.test",
    "inbox.example",
];
const NOTE_WORDS: [&str; 24] = [
    "order", "shipped", "late", "customer", "asked", "refund", "for", "the", "box", "was",
    "damaged", "please", "call", "back", "new", "address", "gift", "wrap", "priority", "again",
    "invoice", "sent", "missing", "item",
];

/// A file shaped like a real export: integer id, ISO timestamp, region (20 values), e-mail
/// (about a million distinct), decimal amount, small integer, a note of 3-8 words (quoted, with
/// commas, in ~15% of rows), a boolean. `rows` rows from `seed`.
pub fn generate_export(path: &Path, rows: u64, seed: u64) {
    if path.exists() {
        return;
    }
    eprintln!(
        "generating {} ({rows} rows, seed {seed})...",
        path.display()
    );
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
    let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xA24B_AED4_963E_E407) | 1);
    w.write_all(b"id,created_at,region,email,amount,quantity,note,active\n")
        .unwrap();
    let mut line = String::with_capacity(256);
    for id in 1..=rows {
        use std::fmt::Write as _;
        line.clear();
        let k = r.below(1_000_000);
        let _ = write!(
            line,
            "{id},2024-{:02}-{:02}T{:02}:{:02}:{:02}Z,{},{}.{}{}@{},{}.{:02},{},",
            1 + r.below(12),
            1 + r.below(28),
            r.below(24),
            r.below(60),
            r.below(60),
            REGIONS[r.below(20) as usize],
            FIRST[(k % 16) as usize],
            NOTE_WORDS[(k / 16 % 24) as usize],
            k / 384,
            DOMAINS[(k % 8) as usize],
            r.below(5000),
            r.below(100),
            1 + r.below(20),
        );
        let words = 3 + r.below(6);
        let comma = r.below(100) < 15;
        if comma {
            line.push('"');
        }
        for j in 0..words {
            if j > 0 {
                line.push_str(if comma && j == 1 { ", " } else { " " });
            }
            line.push_str(NOTE_WORDS[r.below(24) as usize]);
        }
        if comma {
            line.push('"');
        }
        line.push_str(if r.below(2) == 0 {
            ",true\n"
        } else {
            ",false\n"
        });
        w.write_all(line.as_bytes()).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, path).unwrap();
}

/// The csv crate's `ByteRecord` loop over `[start, end)` (a record boundary to the file's end
/// in the bench), with the same 256 KiB reads as ours.
pub fn csv_parse(file: &std::fs::File, start: u64, end: u64) -> u64 {
    let mut f = file.try_clone().unwrap();
    f.seek(SeekFrom::Start(start)).unwrap();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(f.take(end - start));
    let mut rec = csv::ByteRecord::new();
    let mut n = 0;
    while rdr.read_byte_record(&mut rec).unwrap() {
        n += 1;
    }
    n
}

const MODES: [&str; 4] = ["parse", "parse_csv", "parse_old", "parse_portable"];

fn stat(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

/// Interleaved rounds of the four parsers on each file; prints medians, spreads and ratios.
pub fn compare(files: &[&Path], rounds: usize) {
    let mb = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .and_then(|v| v.get("mb_per_cpu_s"))
            .and_then(|x| x.as_f64())
            .unwrap_or(f64::NAN)
    };
    let rss = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .and_then(|v| v.get("peak_rss_mib"))
            .and_then(|x| x.as_f64())
            .unwrap_or(f64::NAN)
    };
    // rates[file][mode][round]
    let mut rates = vec![vec![Vec::new(); MODES.len()]; files.len()];
    let mut peak = vec![vec![0f64; MODES.len()]; files.len()];
    for round in 1..=rounds {
        println!("-- parse round {round} of {rounds}");
        for (fi, path) in files.iter().enumerate() {
            for (mi, mode) in MODES.iter().enumerate() {
                let v = run_child(mode, path, u64::MAX / 4);
                rates[fi][mi].push(mb(&v));
                peak[fi][mi] = peak[fi][mi].max(rss(&v));
            }
        }
    }
    println!("\n| file | parser | MB per CPU-s: median (min-max) | peak RSS MiB |");
    println!("|---|---|---|---|");
    for (fi, path) in files.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy();
        for (mi, mode) in MODES.iter().enumerate() {
            let (m, lo, hi) = stat(&rates[fi][mi]);
            println!(
                "| {name} | {mode} | {m:.0} ({lo:.0}-{hi:.0}) | {:.1} |",
                peak[fi][mi]
            );
        }
        let ratio = |a: usize, b: usize| -> Vec<f64> {
            rates[fi][a]
                .iter()
                .zip(&rates[fi][b])
                .map(|(x, y)| x / y)
                .collect()
        };
        for (label, a, b) in [
            ("ours / csv crate", 0, 1),
            ("ours / old parser", 0, 2),
            ("portable / csv crate", 3, 1),
        ] {
            let r = ratio(a, b);
            let (m, lo, hi) = stat(&r);
            println!(
                "{name}: {label} per round {:?}: median {m:.2}x (min {lo:.2}x, max {hi:.2}x)",
                r.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>()
            );
        }
    }
    let _ = MIB;
}
