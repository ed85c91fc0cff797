//! The one hard property: chunked + merged output equals one sequential parse, for every file
//! and every chunk size. Checked against an obviously-correct reference parser written here
//! (byte by byte over the whole file) and, for well-formed files, against the `csv` crate.

use proptest::prelude::*;
use tessera_engine::dialect::DialectOverrides;
use tessera_engine::file::{process_bytes, MemOutput, ProcessOptions};

const Q: u8 = b'"';
const D: u8 = b',';

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    clean: Vec<Vec<String>>,
    /// (offset, line, reason, raw)
    rejected: Vec<(u64, u64, String, String)>,
    blank_lines: u64,
}

fn breaks_before(data: &[u8], upto: usize) -> u64 {
    let mut n = 0;
    for i in 0..upto {
        if data[i] == b'\r' || (data[i] == b'\n' && (i == 0 || data[i - 1] != b'\r')) {
            n += 1;
        }
    }
    n
}

struct RefRec {
    offset: usize,
    end: usize,
    fields: Vec<Vec<u8>>,
    stray: bool,
}

/// Sequential reference: returns the records after the BOM, or Err(offset of the unclosed quote).
fn reference_records(data: &[u8]) -> Result<(Vec<RefRec>, Vec<usize>), u64> {
    let mut i = if data.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut recs = Vec::new();
    let mut blanks = Vec::new(); // offsets of blank lines
    while i < data.len() {
        if data[i] == b'\n' {
            blanks.push(i);
            i += 1;
            continue;
        }
        if data[i] == b'\r' {
            blanks.push(i);
            i += 1;
            if i < data.len() && data[i] == b'\n' {
                i += 1;
            }
            continue;
        }
        let offset = i;
        let mut fields = Vec::new();
        let mut cur = Vec::new();
        let mut in_q = false;
        let mut at_start = true;
        let mut after_close = false;
        let mut stray = false;
        let mut open_at = 0;
        let end;
        loop {
            if i == data.len() {
                if in_q {
                    return Err(open_at as u64);
                }
                fields.push(std::mem::take(&mut cur));
                end = i;
                break;
            }
            let b = data[i];
            if in_q {
                if b == Q {
                    in_q = false;
                    after_close = true;
                } else {
                    cur.push(b);
                }
                i += 1;
                continue;
            }
            if b == Q {
                if after_close {
                    cur.push(Q);
                } else {
                    if !at_start {
                        stray = true;
                    }
                    open_at = i;
                }
                in_q = true;
                at_start = false;
                after_close = false;
                i += 1;
            } else if b == D {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
                after_close = false;
                i += 1;
            } else if b == b'\r' || b == b'\n' {
                fields.push(std::mem::take(&mut cur));
                end = i;
                i += 1;
                if b == b'\r' && i < data.len() && data[i] == b'\n' {
                    i += 1;
                }
                break;
            } else {
                if after_close {
                    stray = true;
                }
                cur.push(b);
                at_start = false;
                after_close = false;
                i += 1;
            }
        }
        recs.push(RefRec {
            offset,
            end,
            fields,
            stray,
        });
    }
    Ok((recs, blanks))
}

fn reference(data: &[u8], has_header: bool) -> Result<Expected, u64> {
    let (recs, blanks) = reference_records(data)?;
    let mut it = recs.into_iter().peekable();
    let ncols = match it.peek() {
        None => 0,
        Some(r) => r.fields.len(),
    };
    let mut data_start = if data.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    if has_header {
        if let Some(h) = it.next() {
            data_start = h.end + 1;
        }
    }
    let mut exp = Expected {
        clean: vec![],
        rejected: vec![],
        blank_lines: blanks.iter().filter(|&&b| b >= data_start).count() as u64,
    };
    for r in it {
        let raw = &data[r.offset..r.end];
        let reason = if r.stray {
            Some("stray_quote")
        } else if r.fields.iter().any(|f| f.contains(&0)) {
            Some("nul_byte")
        } else if r.fields.iter().any(|f| std::str::from_utf8(f).is_err()) {
            Some("invalid_utf8")
        } else if r.fields.len() != ncols {
            Some("ragged_row")
        } else {
            None
        };
        match reason {
            None => exp.clean.push(
                r.fields
                    .iter()
                    .map(|f| String::from_utf8(f.clone()).unwrap())
                    .collect(),
            ),
            Some(reason) => exp.rejected.push((
                r.offset as u64,
                1 + breaks_before(data, r.offset),
                reason.to_string(),
                String::from_utf8_lossy(raw).into_owned(),
            )),
        }
    }
    Ok(exp)
}

fn read_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn observed(out: &MemOutput) -> Expected {
    let mut clean = read_csv(&out.clean);
    if !out.summary.columns.is_empty() {
        assert_eq!(
            clean.remove(0),
            out.summary.columns,
            "clean.csv starts with the header"
        );
    }
    let mut rej = read_csv(&out.rejected);
    assert_eq!(
        rej.remove(0),
        [
            "source_byte_offset",
            "source_line",
            "reason",
            "raw",
            "detail"
        ]
    );
    Expected {
        clean,
        rejected: rej
            .into_iter()
            .map(|r| {
                (
                    r[0].parse().unwrap(),
                    r[1].parse().unwrap(),
                    r[2].clone(),
                    r[3].clone(),
                )
            })
            .collect(),
        blank_lines: out.summary.blank_lines,
    }
}

fn opts(chunk_size: u64, buf: usize, has_header: bool) -> ProcessOptions {
    ProcessOptions {
        chunk_size,
        workers: 1,
        read_buffer_bytes: buf,
        dialect: DialectOverrides {
            delimiter: Some(b','),
            quote: Some(b'"'),
            has_header: Some(has_header),
        },
        ..ProcessOptions::default()
    }
}

/// Checks one file at one chunk size; returns the number of re-runs.
fn check(data: &[u8], chunk_size: u64, buf: usize, has_header: bool) -> u32 {
    let got = process_bytes(data, &opts(chunk_size, buf, has_header));
    if data.len() >= 16 && data.iter().filter(|&&b| b == 0).count() * 4 >= data.len() {
        assert_eq!(got.unwrap_err().code(), "unsupported_encoding");
        return 0;
    }
    match reference(data, has_header) {
        Err(offset) => match got {
            Err(e) => {
                assert_eq!(e.code(), "unbalanced_quote", "{e}");
                assert!(
                    e.to_string().contains(&format!("byte {offset}")),
                    "{e} vs {offset}"
                );
                0
            }
            Ok(_) => panic!("expected unbalanced quote at {offset}"),
        },
        Ok(exp) => {
            let out = got.unwrap_or_else(|e| panic!("chunk {chunk_size}: {e}"));
            let obs = observed(&out);
            assert_eq!(obs, exp, "chunk size {chunk_size}, buffer {buf}");
            assert_eq!(out.summary.rows as usize, exp.clean.len());
            assert_eq!(out.summary.rejected_rows as usize, exp.rejected.len());
            out.summary.reruns
        }
    }
}

fn check_all_sizes(data: &[u8], has_header: bool) -> u32 {
    let mut reruns = 0;
    for cs in 1..=data.len() as u64 + 1 {
        reruns += check(data, cs, 1 + (cs as usize % 5), has_header);
    }
    reruns
}

// ---------- generators ----------

fn plain_field() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "é", "日", "😀", " ", "x1"]),
        0..4,
    )
    .prop_map(|v| v.concat())
}

fn quoted_field() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", ",", "\"\"", "\n", "\r", "\r\n", "é", " "]),
        0..6,
    )
    .prop_map(|v| format!("\"{}\"", v.concat()))
}

fn good_field() -> impl Strategy<Value = String> {
    prop_oneof![3 => plain_field(), 2 => quoted_field()]
}

fn terminator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["\n", "\r\n", "\r"])
}

/// Well-formed files: header + rows of `ncols` fields, mixed terminators, blank lines, BOM,
/// optional final newline.
fn good_file() -> impl Strategy<Value = Vec<u8>> {
    (1usize..4, any::<bool>(), any::<bool>()).prop_flat_map(|(ncols, bom, final_nl)| {
        let row = (
            prop::collection::vec(good_field(), ncols),
            terminator(),
            0usize..3,
        );
        prop::collection::vec(row, 0..8).prop_map(move |rows| {
            let mut s = String::new();
            if bom {
                s.push('\u{feff}');
            }
            let header: Vec<String> = (0..ncols).map(|i| format!("h{i}")).collect();
            s.push_str(&header.join(","));
            s.push('\n');
            let n = rows.len();
            for (k, (fields, term, blanks)) in rows.into_iter().enumerate() {
                // A row of one empty field is a blank line, not a record: avoid it here.
                let mut line = fields.join(",");
                if line.is_empty() {
                    line = "\"\"".into();
                }
                s.push_str(&line);
                if k + 1 < n || final_nl {
                    s.push_str(term);
                    for _ in 0..blanks {
                        s.push('\n');
                    }
                }
            }
            s.into_bytes()
        })
    })
}

/// Arbitrary byte soup over the alphabet that matters.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![
            b'a', b'a', b'b', b',', b',', b'"', b'"', b'\n', b'\r', 0xC3, 0xA9, 0xFF, 0, b' ',
        ]),
        0..60,
    )
}

proptest! {
    // PROPTEST_CASES=<n> for a long run (the fuzz target's check without nightly).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn well_formed_files_split_exactly(data in good_file(), cs in 1u64..40, buf in 1usize..9) {
        check(&data, cs, buf, true);
        // And the reference agrees with the csv crate on well-formed input.
        let body = data.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(&data);
        let mut want = read_csv(body);
        if !want.is_empty() { want.remove(0); }
        let exp = reference(&data, true).unwrap();
        prop_assert!(exp.rejected.is_empty());
        prop_assert_eq!(exp.clean, want);
    }

    #[test]
    fn one_chunk_equals_many_chunks(data in soup(), cs in 1u64..64, buf in 1usize..16, header in any::<bool>()) {
        // The fuzz target's property, on the soup alphabet: no reference needed.
        let one = process_bytes(&data, &opts(u64::MAX / 2, 1 << 16, header));
        let many = process_bytes(&data, &opts(cs, buf, header));
        match (one, many) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a.clean, b.clean);
                prop_assert_eq!(a.rejected, b.rejected);
                prop_assert_eq!(a.summary.blank_lines, b.summary.blank_lines);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map(|o| o.summary), b.map(|o| o.summary)),
        }
    }

    #[test]
    fn byte_soup_splits_exactly(soup in soup(), cs in 1u64..30, buf in 1usize..5, header in any::<bool>()) {
        // With a header the soup follows a valid one (a bad header is an error, tested elsewhere).
        let mut data = if header { b"a,b\n".to_vec() } else { Vec::new() };
        data.extend_from_slice(&soup);
        check(&data, cs, buf, header);
    }
}

#[test]
fn every_chunk_size_on_tricky_files() {
    let files: &[&[u8]] = &[
        b"a,b\n1,2\r\n\"x\r\ny\",\"q\"\"\"\r3,4",
        b"\xEF\xBB\xBFa,b\n\n\n1,\"\xC3\xA9,\n\"\n\r\n2,3\n",
        b"a,b\n\"\",\"\"\n,\n\"a\"\"b\",c\n",
        b"a,b\nx\"y,1\n2,\"3\n4,5\n",
        b"a\n\"unclosed\n1\n",
        b"",
        b"a,b",
        b"a,b\n",
        b"\r\n\r\na,b\r\n1,2",
    ];
    let mut reruns = 0;
    for f in files {
        reruns += check_all_sizes(f, true);
        reruns += check_all_sizes(f, false);
    }
    assert!(reruns > 0, "the re-run path must be exercised");
}

#[test]
fn long_quoted_field_beyond_the_guess_window_is_rerun() {
    let mut data = b"id,text\n1,\"".to_vec();
    data.extend(std::iter::repeat_n(b'x', 200_000));
    data.extend_from_slice(b"\n\"\n2,ok\n");
    let out = process_bytes(&data, &opts(50_000, 4096, true)).unwrap();
    assert!(out.summary.reruns > 0);
    assert_eq!(out.summary.rows, 2);
    check(&data, 50_000, 65_536, true);
}

#[test]
fn abandoned_speculative_chunks_are_rerun() {
    // Chunks inside the long quoted field guess "outside" (no quote in their window) and would
    // read on; with a small overrun cap they give up and are re-run with the known state.
    let mut data = b"id,text\n1,\"".to_vec();
    data.extend(std::iter::repeat_n(b'x', 300_000));
    data.extend_from_slice(b"\n\"\n2,ok\n3,\"a\nb\"\n");
    let mut o = opts(20_000, 4096, true);
    o.chunk.max_speculative_overrun_bytes = 1_000;
    let capped = process_bytes(&data, &o).unwrap();
    assert!(
        capped.chunks.iter().all(|c| !c.abandoned),
        "re-runs replace abandoned chunks"
    );
    let plain = process_bytes(&data, &opts(20_000, 4096, true)).unwrap();
    assert_eq!(capped.clean, plain.clean);
    assert_eq!(capped.rejected, plain.rejected);
    assert_eq!(capped.summary.rows, 3);
    assert!(capped.summary.reruns >= plain.summary.reruns);
    check(&data, 20_000, 4096, true);
    // And the cap really fires: a guessed chunk inside the field gives up.
    let task = tessera_engine::split::ChunkTask {
        index: 3,
        start: 60_000,
        end: 80_000,
        start_in_quotes: None,
    };
    let sn = tessera_engine::dialect::sniff(&data, &DialectOverrides::default()).unwrap();
    let r = tessera_engine::file::run_chunk(
        data.as_slice(),
        data.len() as u64,
        &task,
        &sn.dialect,
        &sn.columns,
        &o.chunk,
        4096,
        &mut std::io::sink(),
        &mut std::io::sink(),
    )
    .unwrap();
    assert!(r.abandoned);
    assert_eq!(r.quote_count_in_range, 0);
}
