//! The export-shaped bench file (shared by the engine bench's bare-parse comparison and the
//! query bench): generated once, deterministically, from a row count and a seed. Included by
//! `#[path]` next to `bench_file.rs` (its `Rng` must be in scope at the including crate's root).

use std::io::{BufWriter, Write};
use std::path::Path;

use super::Rng;

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
