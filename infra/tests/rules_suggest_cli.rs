//! `tessera rules suggest FILE --out RULES.json`, then `tessera process FILE --rules
//! RULES.json`: the binary's document is accepted, rejects none of its own file's records (the
//! issue's bar is under 0.1 %), and rejects the records of a copy with injected faults.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tessera(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the tessera binary runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-rules-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// (records, rule-rejected records) of a `tessera process` run, from its summary.json.
fn process(file: &Path, rules: &Path, dir: &Path) -> (u64, u64) {
    let out = dir.join("out");
    ok(&tessera(
        &[
            "process",
            file.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--chunk-size",
            "65536",
        ],
        dir,
    ));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let rows = s["rows"].as_u64().unwrap();
    let rule_rejected = s["rule_rejected_rows"].as_u64().unwrap();
    (rows + rule_rejected, rule_rejected)
}

/// An orders export (`rows` records) and a copy where every 100th record has one fault.
fn orders(rows: usize) -> (String, String, usize) {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let head = "id,email,ordered_on,amount,status,note\n";
    let (mut clean, mut faulty) = (head.to_string(), head.to_string());
    let mut faults = 0;
    for i in 0..rows {
        let mut rec = [
            format!("{}", 5000 + i),
            format!("buyer{}@shop{}.example.com", next() % 9000, next() % 4),
            format!("2026-{:02}-{:02}", 1 + next() % 12, 1 + next() % 28),
            format!("{}.{:02}", next() % 900, next() % 100),
            ["new", "paid", "sent", "returned"][(next() % 4) as usize].to_string(),
            format!(
                "\"said \"\"{}\"\", then, {}\"",
                ["ok", "late", "fine"][(next() % 3) as usize],
                next() % 1000
            ),
        ];
        clean.push_str(&rec.join(","));
        clean.push('\n');
        if i % 100 == 50 {
            faults += 1;
            match (i / 100) % 5 {
                0 => rec[4] = String::new(),
                1 => rec[3] = "250000.00".into(),
                2 => rec[1] = rec[1].replace('@', ""),
                3 => rec[2] = "2026-02-30".into(),
                _ => rec[4] = "archived".into(),
            }
        }
        faulty.push_str(&rec.join(","));
        faulty.push('\n');
    }
    (clean, faulty, faults)
}

#[test]
fn suggested_rules_are_accepted_and_hold_on_their_file() {
    let dir = scratch("suggest");
    let (clean, faulty, faults) = orders(20_000);
    let file = dir.join("orders.csv");
    let bad = dir.join("orders_faulty.csv");
    std::fs::write(&file, clean).unwrap();
    std::fs::write(&bad, faulty).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sample.csv");
    for f in [&file, &sample] {
        let rules = dir.join("rules.json");
        let o = tessera(
            &[
                "rules",
                "suggest",
                f.to_str().unwrap(),
                "--out",
                rules.to_str().unwrap(),
                "--chunk-size",
                "65536",
            ],
            &dir,
        );
        ok(&o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("rules suggested from the profile"), "{err}");
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&rules).unwrap()).unwrap();
        let n = doc["rules"].as_array().unwrap().len();
        assert!(n >= 10, "{doc}");
        let (records, rejected) = process(f, &rules, &dir);
        println!(
            "{}: {n} rules; {rejected} of {records} records rejected ({:.3}%)",
            f.display(),
            100.0 * rejected as f64 / records as f64
        );
        assert!((rejected as f64) < 0.001 * records as f64);
        if f == &file {
            let (records, rejected) = process(&bad, &rules, &dir);
            println!(
                "{}: {rejected} of {records} records rejected; {faults} faults injected",
                bad.display()
            );
            assert!(
                rejected as f64 >= 0.9 * faults as f64,
                "{rejected} of {faults}"
            );
            assert!((rejected as f64) <= faults as f64 + 0.001 * records as f64);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_envelope_and_errors() {
    let dir = scratch("json");
    let (clean, _, _) = orders(500);
    let file = dir.join("small.csv");
    std::fs::write(&file, clean).unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&tessera(
        &["rules", "suggest", file.to_str().unwrap(), "--json"],
        &dir,
    )))
    .unwrap();
    assert_eq!(v["source"], "profile");
    assert_eq!(v["rules"]["version"], 1);
    let rules = v["rules"]["rules"].as_array().unwrap();
    let reasons = v["reasons"].as_array().unwrap();
    assert_eq!(rules.len(), reasons.len());
    assert_eq!(reasons[0]["path"], "/rules/0");
    assert_eq!(v["dry_run"]["records"], 500);

    let missing = tessera(&["rules", "suggest", "no-such.csv"], &dir);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no-such.csv is not a readable file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
