//! The quality bar of offline rule suggestions (issue 12): rules suggested from a file's profile
//! hold on that file (under 0.1 % of its records rejected) and catch most records of a copy with
//! injected faults (nulls in complete columns, values far outside the observed range, malformed
//! e-mail addresses and dates, unseen categories), at several chunk sizes, all in-process with
//! the engine code `tessera process` runs.
//!
//! The figures in docs/rules.md ("Suggested rules") are this test's output:
//! `cargo test -p tessera-engine --test rules_suggest -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tessera_engine::chunk::ChunkOptions;
use tessera_engine::file::{process_bytes, ProcessOptions};
use tessera_engine::profile::ProfileReport;
use tessera_engine::rules::suggest::{
    suggest, suggest_profile_options, SuggestOptions, Suggestion,
};
use tessera_engine::rules::{against_profile, parse_document, CompiledRules, ResolvedRefs};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Null,
    OutOfRange,
    BadEmail,
    BadDate,
    UnseenCategory,
}

const FAULTS: [Fault; 5] = [
    Fault::Null,
    Fault::OutOfRange,
    Fault::BadEmail,
    Fault::BadDate,
    Fault::UnseenCategory,
];

/// The clean file, the faulty copy, and the faulty copy's records with a fault: byte offset
/// of the record -> its fault.
struct Files {
    clean: Vec<u8>,
    faulty: Vec<u8>,
    faults: BTreeMap<u64, Fault>,
}

const FIRST: &[&str] = &[
    "anna", "ben", "chloé", "dmitri", "emma", "farid", "grace", "hiro", "ines", "jonas", "kemal",
    "lucia", "mei", "noah", "olga", "pedro", "quinn", "rosa", "sven", "tariq",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "post.example.de",
    "corp.example.co.uk",
    "example.fr",
];
const STATUS: &[&str] = &[
    "paid",
    "paid",
    "paid",
    "shipped",
    "shipped",
    "delivered",
    "delivered",
    "delivered",
    "pending",
    "refunded",
];
const COUNTRIES: &[&str] = &[
    "DE", "FR", "GB", "US", "ES", "IT", "NL", "PL", "SE", "CH", "AT", "BE", "PT", "IE", "DK", "NO",
    "FI", "CZ", "CA", "JP",
];
const WORDS: &[&str] = &[
    "great",
    "late",
    "box",
    "damaged",
    "\"fast\"",
    "thanks,",
    "again",
    "colour",
    "size",
    "refund?",
    "ok",
    "said \"fine\"",
    "wrong, item",
    "x",
];

/// Days since 1970-01-01 to `YYYY-MM-DD` (Hinnant).
fn civil(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// An orders export: `rows` records, ~1 % of them faulty in the copy (one fault each).
fn generate(rows: usize, seed: u64) -> Files {
    let mut rng = Rng(seed);
    let header = "id,order_ref,email,created_at,ship_date,amount,status,country,coupon,note\n";
    let mut clean = header.as_bytes().to_vec();
    let mut faulty = clean.clone();
    let mut faults = BTreeMap::new();
    let customers = (rows / 3).max(1) as u64;
    let day0 = 20_089; // 2025-01-01
    for i in 0..rows {
        let id = 100_001 + i as u64;
        let order_ref = format!("ORD-{:07}", (i as u64 * 7_919) % 10_000_000);
        let c = rng.below(customers);
        let email = format!(
            "{}.{}{}@{}",
            rng.pick(FIRST),
            c,
            if c.is_multiple_of(3) { "+shop" } else { "" },
            DOMAINS[(c % DOMAINS.len() as u64) as usize]
        );
        let day = day0 + rng.below(700) as i64;
        let created = format!(
            "{}T{:02}:{:02}:{:02}Z",
            civil(day),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        );
        let ship = civil(day + 1 + rng.below(9) as i64);
        let amount = format!("{:.2}", 1.0 + 4999.0 * rng.unit().powi(3));
        let status = rng.pick(STATUS).to_string();
        let country = rng.pick(COUNTRIES).to_string();
        let coupon = if rng.below(10) < 7 {
            String::new()
        } else {
            format!("SAVE{}", 5 * (1 + rng.below(4)))
        };
        let note = if rng.below(20) == 0 {
            String::new()
        } else {
            let n = 1 + rng.below(8);
            let mut words: Vec<&str> = (0..n).map(|_| rng.pick(WORDS)).collect();
            if rng.below(50) == 0 {
                words.push("second\nline");
            }
            words.join(" ")
        };
        let mut rec = [
            id.to_string(),
            order_ref,
            email,
            created,
            ship,
            amount,
            status,
            country,
            coupon,
            note,
        ];
        let line = |r: &[String]| {
            let mut s: Vec<String> = r.iter().map(|f| quote(f)).collect();
            s.last_mut().unwrap().push('\n');
            s.join(",")
        };
        clean.extend_from_slice(line(&rec).as_bytes());
        let offset = faulty.len() as u64;
        if rng.below(100) < 5 {
            let fault = FAULTS[rng.below(5) as usize];
            match fault {
                // Columns with a value in every clean row.
                Fault::Null => rec[[2, 3, 4, 5, 6, 7][rng.below(6) as usize]] = String::new(),
                Fault::OutOfRange => match rng.below(4) {
                    0 => rec[5] = format!("{:.2}", 1000.0 * rec[5].parse::<f64>().unwrap()),
                    1 => rec[5] = format!("-{}", rec[5]),
                    2 => rec[3] = format!("1999{}", &rec[3][4..]),
                    _ => rec[4] = format!("2099{}", &rec[4][4..]),
                },
                Fault::BadEmail => {
                    let e = rec[2].clone();
                    rec[2] = match rng.below(4) {
                        0 => e.replace('@', "#"),
                        1 => e[..e.find('@').unwrap() + 1].to_string(),
                        2 => e.replace('@', " @"),
                        // Not a cut at the last dot: `x@mail.example` is still well formed.
                        _ => format!("{e}."),
                    }
                }
                Fault::BadDate => {
                    let d = rec[4].clone();
                    rec[4] = match rng.below(3) {
                        0 => format!("{}/{}/{}", &d[8..10], &d[5..7], &d[..4]),
                        1 => format!("{}-13-{}", &d[..4], &d[8..10]),
                        _ => format!("{}-02-30", &d[..4]),
                    }
                }
                Fault::UnseenCategory => {
                    if rng.below(2) == 0 {
                        rec[6] = rng.pick(&["archived", "PAID", "lost"]).to_string()
                    } else {
                        rec[7] = rng.pick(&["XX", "de", "ZZ"]).to_string()
                    }
                }
            }
            faults.insert(offset, fault);
        }
        faulty.extend_from_slice(line(&rec).as_bytes());
    }
    Files {
        clean,
        faulty,
        faults,
    }
}

fn opts(chunk_size: u64) -> ProcessOptions {
    ProcessOptions {
        chunk_size,
        workers: 2,
        chunk: ChunkOptions {
            profile: suggest_profile_options(),
            ..ChunkOptions::default()
        },
        ..ProcessOptions::default()
    }
}

fn profile(data: &[u8], chunk_size: u64) -> ProfileReport {
    let o = ProcessOptions {
        profile_only: true,
        ..opts(chunk_size)
    };
    process_bytes(data, &o).unwrap().profile.report()
}

/// Suggests from `profile` and checks the document with the three validations.
fn suggested(profile: &ProfileReport) -> (Suggestion, Arc<CompiledRules>) {
    let s = suggest(
        profile,
        &SuggestOptions::for_profile(&suggest_profile_options()),
    );
    let text = serde_json::to_string_pretty(&s.rules).unwrap();
    let doc = parse_document(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert!(against_profile(&doc, profile).is_empty(), "{text}");
    let columns: Vec<String> = profile.columns.iter().map(|c| c.name.clone()).collect();
    let compiled = CompiledRules::compile(&doc, &columns, &ResolvedRefs::none(), None)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    (s, Arc::new(compiled))
}

/// Runs the rules over `data`: (records checked, rule-rejected records, byte offsets of the
/// rule-rejected records, violations per rule).
fn dry_run(
    data: &[u8],
    rules: &Arc<CompiledRules>,
    chunk_size: u64,
) -> (u64, u64, BTreeSet<u64>, BTreeMap<String, u64>) {
    let o = ProcessOptions {
        chunk: ChunkOptions {
            rules: Some(rules.clone()),
            ..opts(chunk_size).chunk
        },
        ..opts(chunk_size)
    };
    let out = process_bytes(data, &o).unwrap();
    let mut offsets = BTreeSet::new();
    let mut rd = csv::Reader::from_reader(&out.rejected[..]);
    for r in rd.records() {
        let r = r.unwrap();
        if r[2].starts_with("rule:") {
            offsets.insert(r[0].parse::<u64>().unwrap());
        }
    }
    let s = &out.summary;
    assert_eq!(offsets.len() as u64, s.rule_rejected_rows);
    (
        s.rows + s.rule_rejected_rows,
        s.rule_rejected_rows,
        offsets,
        s.violations.clone(),
    )
}

fn kinds(s: &Suggestion) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in &s.reasons {
        *m.entry(format!("{:?}", r.kind)).or_default() += 1;
    }
    m
}

#[test]
fn suggested_rules_hold_on_their_file_and_catch_injected_faults() {
    let rows = 40_000;
    let files = generate(rows, 0x5eed_0012);
    let mb = files.clean.len() as f64 / 1e6;
    println!(
        "generated orders export: {rows} records, {mb:.1} MB, {} faulty records in the copy",
        files.faults.len()
    );
    let mut first: Option<Suggestion> = None;
    for chunk_size in [64 << 10, 1 << 20, 64 << 20] {
        let p = profile(&files.clean, chunk_size);
        assert_eq!(p.rows, rows as u64);
        let (s, rules) = suggested(&p);
        match &first {
            None => {
                println!(
                    "suggested {} rules: {:?}\n{}",
                    s.rules.rules.len(),
                    kinds(&s),
                    serde_json::to_string_pretty(&s.rules).unwrap()
                );
                for r in &s.reasons {
                    println!("  {} ({}): {}", r.id, r.path, r.why);
                }
                first = Some(s.clone());
            }
            // The profile's statistics used here do not depend on the chunking.
            Some(f) => assert_eq!(f, &s, "chunk size {chunk_size}"),
        }
        // Each kind the data calls for is there.
        let k = kinds(&s);
        for kind in ["Completeness", "Type", "Range", "OneOf", "Format", "Unique"] {
            assert!(k.contains_key(kind), "no {kind} rule: {k:?}");
        }

        // (a) On the file itself: under 0.1 % rejected (in fact none).
        let (records, rejected, _, violations) = dry_run(&files.clean, &rules, chunk_size);
        assert_eq!(records, rows as u64);
        let rate = rejected as f64 / records as f64;
        println!(
            "chunk {chunk_size}: clean file: {rejected} of {records} records rejected ({:.3}%)",
            100.0 * rate
        );
        assert!(rate < 0.001, "{violations:?}");

        // (b) On the faulty copy: most faulty records caught, per kind; few clean ones hit.
        let (records, _, caught, _) = dry_run(&files.faulty, &rules, chunk_size);
        assert_eq!(records, rows as u64);
        let mut per: BTreeMap<Fault, (u64, u64)> = BTreeMap::new();
        for (off, f) in &files.faults {
            let e = per.entry(*f).or_default();
            e.0 += 1;
            e.1 += u64::from(caught.contains(off));
        }
        let false_hits = caught
            .iter()
            .filter(|o| !files.faults.contains_key(o))
            .count();
        let total: (u64, u64) = per.values().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        for (f, (n, c)) in &per {
            println!(
                "chunk {chunk_size}: {f:?}: caught {c} of {n} ({:.1}%)",
                100.0 * *c as f64 / *n as f64
            );
            assert!(*n >= 50, "{f:?}: too few injected to measure");
            assert!(*c as f64 >= 0.9 * *n as f64, "{f:?}: caught {c} of {n}");
        }
        println!(
            "chunk {chunk_size}: all faults: caught {} of {} ({:.1}%); clean records of the copy rejected: {false_hits}",
            total.1,
            total.0,
            100.0 * total.1 as f64 / total.0 as f64
        );
        assert!((false_hits as f64) < 0.001 * rows as f64);
    }
}

#[test]
fn suggested_rules_hold_on_the_sample_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/sample.csv");
    let data = std::fs::read(path).unwrap();
    for chunk_size in [64 << 10, 64 << 20] {
        let p = profile(&data, chunk_size);
        let (s, rules) = suggested(&p);
        assert!(s.rules.rules.len() >= 5, "{:?}", kinds(&s));
        let (records, rejected, _, violations) = dry_run(&data, &rules, chunk_size);
        let rate = rejected as f64 / records as f64;
        println!(
            "tests/data/sample.csv, chunk {chunk_size}: {} rules {:?}; {rejected} of {records} records rejected ({:.3}%)",
            s.rules.rules.len(),
            kinds(&s),
            100.0 * rate
        );
        if chunk_size == 64 << 10 {
            for r in &s.reasons {
                println!("  {} ({}): {}", r.id, r.path, r.why);
            }
        }
        assert!(rate < 0.001, "{violations:?}");
    }
}
