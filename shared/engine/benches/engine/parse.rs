//! The bare-parse comparison of the engine bench (`TESSERA_BENCH_PARSE_ONLY=1`): our parser
//! (the kernel `Parser::new` picks), the same state machine without the structural index
//! (`Kernel::Scalar`, the parser before the index), the portable kernel, and the csv crate's
//! `ByteRecord` loop, in interleaved rounds on the bench file and on a generated file shaped
//! like a real export (`generate_export`).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

pub use super::export_file::generate_export;
use super::{run_child, MIB};

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
