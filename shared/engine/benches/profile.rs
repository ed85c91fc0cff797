//! Micro-benchmark of `ProfileState::observe` on typical mixed CSV (10 columns: integers,
//! decimals, dates, short strings), in MB of CSV text per CPU-second of this thread.
//!
//! Run: `cargo bench -p tessera-engine --bench profile` (ROWS=... to change the size).
//! Records are built in memory first, so only the profile is measured, not parsing.

use std::hint::black_box;

use tessera_engine::profile::{ProfileOptions, ProfileState};
use tessera_engine::record::Record;

#[path = "common/bench_file.rs"]
mod bench_file;
use bench_file::{thread_cpu_seconds as cpu_seconds, Rng};

const CATEGORIES: [&str; 12] = [
    "books", "garden", "toys", "music", "tools", "food", "sports", "beauty", "auto", "baby",
    "office", "pets",
];
const STATUS: [&str; 4] = ["shipped", "pending", "returned", "cancelled"];

/// All rows' field texts laid end to end, per-row field ends (relative to the row start),
/// and the CSV byte length the rows would have (fields + delimiters + newline).
struct Data {
    text: String,
    ends: Vec<usize>,
    rows: Vec<(usize, usize)>,
    csv_bytes: u64,
}

fn generate(rows: usize) -> Data {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut d = Data {
        text: String::new(),
        ends: Vec::new(),
        rows: Vec::new(),
        csv_bytes: 0,
    };
    let cities: Vec<String> = (0..50).map(|i| format!("City{i:02}")).collect();
    for i in 0..rows {
        let start = d.text.len();
        let fields = [
            (1_000_000 + i).to_string(),
            (1 + rng.below(100)).to_string(),
            format!("{}.{:02}", rng.below(2000), rng.below(100)),
            format!("0.{:02}", rng.below(100)),
            format!(
                "{}-{:02}-{:02}",
                2020 + rng.below(5),
                1 + rng.below(12),
                1 + rng.below(28)
            ),
            format!(
                "{}-{:02}-{:02}",
                2020 + rng.below(5),
                1 + rng.below(12),
                1 + rng.below(28)
            ),
            CATEGORIES[rng.below(12) as usize].to_string(),
            format!("cust{}", rng.below(5000)),
            cities[rng.below(50) as usize].clone(),
            STATUS[rng.below(4) as usize].to_string(),
        ];
        for f in &fields {
            d.text.push_str(f);
            d.ends.push(d.text.len() - start);
        }
        d.rows.push((start, d.text.len()));
        d.csv_bytes += (d.text.len() - start + fields.len()) as u64;
    }
    d
}

fn run(d: &Data, opts: &ProfileOptions) -> (f64, ProfileState) {
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let mut p = ProfileState::new(names, opts);
    let t0 = cpu_seconds();
    let mut off = 0u64;
    for (r, &(s, e)) in d.rows.iter().enumerate() {
        let rec = Record::new(&d.text[s..e], &d.ends[r * 10..r * 10 + 10]);
        p.observe(off, &rec);
        off += (e - s + 10) as u64;
    }
    p.add_bytes(d.csv_bytes);
    (cpu_seconds() - t0, black_box(p))
}

/// ns per value when each column is profiled alone (PER_COLUMN=1), to find the slow kind.
fn per_column(d: &Data, opts: &ProfileOptions) {
    let only: Option<usize> = std::env::var("ONLY_COLUMN")
        .ok()
        .and_then(|v| v.parse().ok());
    for c in 0..10 {
        if only.is_some_and(|o| o != c) {
            continue;
        }
        let mut p = ProfileState::new(vec![format!("c{c}")], opts);
        let t0 = cpu_seconds();
        for (r, &(s, _)) in d.rows.iter().enumerate() {
            let a = if c == 0 { 0 } else { d.ends[r * 10 + c - 1] };
            let b = d.ends[r * 10 + c];
            let ends = [b - a];
            p.observe(r as u64, &Record::new(&d.text[s + a..s + b], &ends));
        }
        let ns = (cpu_seconds() - t0) * 1e9 / d.rows.len() as f64;
        let col = &black_box(p.report()).columns[0];
        println!(
            "  column {c}: {ns:5.1} ns/value  type {:?} distinct {}",
            col.r#type, col.distinct
        );
    }
}

fn main() {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let d = generate(rows);
    let mb = d.csv_bytes as f64 / 1e6;
    let mut opts = ProfileOptions::default();
    if let Some(c) = std::env::var("TOP_CAPACITY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.top_capacity = c;
    }
    if std::env::var_os("PER_COLUMN").is_some() {
        per_column(&d, &opts);
        if std::env::var_os("ONLY_COLUMN").is_some() {
            return;
        }
    }
    let mut rates = Vec::new();
    for _ in 0..5 {
        let (secs, p) = run(&d, &opts);
        rates.push(mb / secs);
        black_box(p.report());
    }
    rates.sort_by(f64::total_cmp);
    let (_, p) = run(&d, &opts);
    let (tm, tr) = (cpu_seconds(), p.report());
    let report_secs = cpu_seconds() - tm;
    let state = p.to_bytes().len();
    println!(
        "profile observe: {rows} rows, {mb:.1} MB CSV, 10 columns: median {:.0} MB/CPU-s (min {:.0}, max {:.0}); report {:.1} ms; state {} bytes; distinct(c0)={}",
        rates[2],
        rates[0],
        rates[4],
        report_secs * 1e3,
        state,
        tr.columns[0].distinct
    );
}
