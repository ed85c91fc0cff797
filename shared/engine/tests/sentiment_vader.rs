//! Differential test of the `sentiment` module against the reference implementation, PyPI
//! `vadersentiment==3.3.2`, run as a `python3` subprocess (tests/sentiment/reference.py).
//! Every sentence of tests/sentiment/corpus.jsonl (made by tests/sentiment/gen_corpus.py), plus
//! a few invalid UTF-8 fields, must get the same four scores within 1e-6.
//!
//! This test never skips: without python3 or the pinned package it fails and says what to
//! install (`python3 -m pip install vadersentiment==3.3.2`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tessera_engine::sentiment::{Analyzer, Scores};

const TOLERANCE: f64 = 1e-6;

enum Input {
    Text(String),
    Bytes(Vec<u8>),
}

impl Input {
    fn bytes(&self) -> &[u8] {
        match self {
            Input::Text(s) => s.as_bytes(),
            Input::Bytes(b) => b,
        }
    }

    fn to_json(&self) -> String {
        match self {
            Input::Text(s) => serde_json::json!({ "t": s }).to_string(),
            Input::Bytes(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                serde_json::json!({ "b": hex }).to_string()
            }
        }
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sentiment")
}

fn corpus() -> Vec<Input> {
    let text = std::fs::read_to_string(dir().join("corpus.jsonl")).expect("read corpus.jsonl");
    let mut inputs: Vec<Input> = text
        .lines()
        .map(|l| Input::Text(serde_json::from_str(l).expect("corpus line is a JSON string")))
        .collect();
    // Fields that are not valid UTF-8: read as Python's decode("utf-8", "replace") reads them.
    for b in [
        &b"good \xff bad"[..],
        b"\xe2\x82 great",
        b"GREAT\xc3",
        b"\xf0\x9f\x98 happy \xf0\x9f\x98\x80",
        b"not \xed\xa0\x80 good!!",
        b"\xc0\xaf love it",
        b"\xf4\x90\x80\x80 bad",
    ] {
        inputs.push(Input::Bytes(b.to_vec()));
    }
    inputs
}

/// The reference's scores, one `[neg, neu, pos, compound]` per input.
fn reference(inputs: &[Input]) -> Vec<[f64; 4]> {
    let script = dir().join("reference.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install Python 3 and `python3 -m pip install vadersentiment==3.3.2`")
        });
    let mut stdin = child.stdin.take().expect("stdin");
    let payload: String = inputs.iter().map(|i| i.to_json() + "\n").collect();
    let writer = std::thread::spawn(move || stdin.write_all(payload.as_bytes()));
    let out = child.wait_with_output().expect("wait for python3");
    writer.join().expect("writer").expect("write to python3");
    assert!(
        out.status.success(),
        "the reference failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<[f64; 4]> = String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a [neg, neu, pos, compound] line"))
        .collect();
    assert_eq!(lines.len(), inputs.len(), "one reference line per input");
    lines
}

#[test]
fn compound_and_proportions_match_vadersentiment_3_3_2() {
    let inputs = corpus();
    assert!(inputs.len() >= 2000, "corpus too small: {}", inputs.len());
    let expected = reference(&inputs);
    let mut analyzer = Analyzer::new();
    let (mut max_compound, mut max_other) = (0.0f64, 0.0f64);
    let mut mismatches = Vec::new();
    for (input, want) in inputs.iter().zip(&expected) {
        let Scores {
            neg,
            neu,
            pos,
            compound,
        } = analyzer.polarity_scores(input.bytes());
        let dc = (compound - want[3]).abs();
        let dother = [neg - want[0], neu - want[1], pos - want[2]]
            .iter()
            .fold(0.0f64, |m, d| m.max(d.abs()));
        max_compound = max_compound.max(dc);
        max_other = max_other.max(dother);
        if dc > TOLERANCE || dother > TOLERANCE {
            mismatches.push(format!(
                "{:?}: rust [{neg}, {neu}, {pos}, {compound}] python {want:?}",
                String::from_utf8_lossy(input.bytes())
            ));
        }
    }
    println!(
        "sentiment differential: {} inputs, max |compound diff| {max_compound:e}, max |neg/neu/pos diff| {max_other:e}, {} over {TOLERANCE:e}",
        inputs.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} inputs differ from vaderSentiment 3.3.2; first ones:\n{}",
        mismatches.len(),
        inputs.len(),
        mismatches[..mismatches.len().min(25)].join("\n")
    );
}
