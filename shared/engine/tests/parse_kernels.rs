//! The parser's structural-index fast path against the byte state machine it speeds up: every
//! kernel available on this CPU (portable u64, SSE2, AVX2 + PCLMULQDQ) must give exactly what
//! `Kernel::Scalar` (the state machine alone, the parser as it was before the index) gives:
//! the same outcomes at the same offsets, the same records (text, field ends, offsets, line,
//! flags) and the same counters, for input fed whole and in small pieces, from a record start
//! and from the `Skip*` states a chunk starts in, with default and with tiny size limits.

use proptest::prelude::*;
use tessera_engine::parse::{Kernel, Outcome, Parser, ParserConfig, RecordBuf, State};

/// Everything observable from one parse, step by step.
#[derive(Debug, PartialEq)]
enum Event {
    Step {
        out: Outcome,
        used: usize,
        pos: u64,
        quotes: u64,
        lines: u64,
        blank: u64,
        state: State,
    },
    Rec {
        text: Vec<u8>,
        ends: Vec<usize>,
        start: u64,
        content_end: u64,
        start_line: u64,
        stray: bool,
        too_large: bool,
        any_quoted: bool,
        quote_open_at: u64,
    },
    Finish(Result<Outcome, String>, u64),
}

#[derive(Debug)]
struct Setup {
    cfg: ParserConfig,
    state: State,
    stop_at: u64,
}

fn record(rec: &RecordBuf, p: &Parser) -> Event {
    Event::Rec {
        text: if rec.too_large {
            Vec::new()
        } else {
            rec.text.clone()
        },
        ends: rec.ends.clone(),
        start: rec.start,
        content_end: rec.content_end,
        start_line: rec.start_line,
        stray: rec.stray_quote,
        too_large: rec.too_large,
        any_quoted: rec.any_quoted,
        quote_open_at: p.quote_open_at(),
    }
}

/// Parses `input` cut at `cuts` (sorted offsets) with `kernel` and returns every event.
fn trace(input: &[u8], cuts: &[usize], kernel: Kernel, s: &Setup) -> Vec<Event> {
    let mut p = Parser::new(s.cfg, s.state, 0, s.stop_at).with_kernel(kernel);
    let mut rec = RecordBuf::default();
    let mut ev = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
    bounds.push(input.len());
    let mut from = 0;
    'pieces: for &to in &bounds {
        let piece = &input[from..to.max(from)];
        from = to.max(from);
        let mut off = 0;
        loop {
            let (out, used) = p.parse(&piece[off..], &mut rec);
            off += used;
            ev.push(Event::Step {
                out,
                used,
                pos: p.pos(),
                quotes: p.quotes(),
                lines: p.lines(),
                blank: p.blank_lines(),
                state: p.state(),
            });
            match out {
                Outcome::Record => ev.push(record(&rec, &p)),
                Outcome::Stop => break 'pieces,
                Outcome::NeedInput => break,
            }
        }
    }
    let fin = p.finish(&mut rec).map_err(|e| e.to_string());
    if fin == Ok(Outcome::Record) {
        ev.push(record(&rec, &p));
    }
    ev.push(Event::Finish(fin, p.quotes()));
    ev
}

fn check(input: &[u8], cuts: &[usize], s: &Setup) {
    let want = trace(input, cuts, Kernel::Scalar, s);
    let whole = trace(input, &[], Kernel::Scalar, s);
    for k in Kernel::all_available() {
        assert_eq!(trace(input, cuts, k, s), want, "{k:?}, pieces");
        assert_eq!(trace(input, &[], k, s), whole, "{k:?}, whole");
    }
}

/// CSV-like text: fields of every shape the fast path takes and every shape it hands back.
fn csvish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        6 => "[a-z0-9 .@-]{0,12}".prop_map(String::into_bytes),
        3 => Just(b",".to_vec()),
        2 => Just(b"\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        2 => "[a-z, ]{0,20}".prop_map(|s| format!("\"{s}\"").into_bytes()),
        1 => "[a-z,\r\n]{0,10}".prop_map(|s| format!("\"{s}\"\"{s}\"\"\"").into_bytes()),
        1 => Just(b"\"".to_vec()),
        1 => Just(b"\"\"".to_vec()),
        1 => Just("é東".as_bytes().to_vec()),
        1 => "[a-z]{60,140}".prop_map(String::into_bytes),
        1 => "[a-z,\"]{60,90}".prop_map(|s| format!("\"{s}\"").into_bytes()),
        1 => Just(vec![0xFF, 0x00]),
    ];
    prop::collection::vec(token, 0..120).prop_map(|t| t.concat())
}

fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![b'a', b'b', b',', b'"', b'\r', b'\n', b' ', b';', 0xC3]),
        0..600,
    )
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..700, 0..40).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop::sample::select(vec![b',', b';', b'\t']),
        prop::sample::select(vec![
            State::LineStart,
            State::LineStart,
            State::SkipOut,
            State::SkipIn,
        ]),
        prop::option::weighted(0.2, 0u64..700),
        prop::option::weighted(0.2, (1usize..40, 1usize..200)),
    )
        .prop_map(|(delimiter, state, stop, limits)| {
            let mut cfg = ParserConfig {
                delimiter,
                ..ParserConfig::default()
            };
            if let Some((f, r)) = limits {
                cfg.max_field_bytes = f;
                cfg.max_record_bytes = r;
            }
            Setup {
                cfg,
                state,
                stop_at: stop.unwrap_or(u64::MAX),
            }
        })
}

proptest! {
    // 800 cases by default (CI); `PROPTEST_CASES=20000` for a long run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(800)
    ))]

    #[test]
    fn kernels_agree_on_csv_like_text(input in csvish(), cuts in cuts(), s in setup()) {
        // With `;`/TAB the commas are ordinary bytes: the same text, other boundaries.
        check(&input, &cuts, &s);
    }

    #[test]
    fn kernels_agree_on_byte_soup(input in soup(), cuts in cuts(), s in setup()) {
        check(&input, &cuts, &s);
    }

    #[test]
    fn kernels_agree_in_one_byte_pieces(input in csvish(), s in setup()) {
        let cuts: Vec<usize> = (1..input.len()).collect();
        check(&input, &cuts, &s);
    }
}

#[test]
fn a_fast_path_kernel_is_in_use() {
    let k = Parser::from_start(ParserConfig::default()).kernel();
    assert_eq!(k, Kernel::detect());
    assert_ne!(k, Kernel::Scalar);
    // The deployed arm64 functions get the NEON kernel (PMULL is on every Graviton and on
    // qemu-user's default CPU, where CI runs this test: .ci/arm64).
    #[cfg(target_arch = "aarch64")]
    assert_eq!(k, Kernel::Neon);
    // A dialect whose special bytes collide gets the state machine alone.
    let odd = ParserConfig {
        delimiter: b'"',
        ..ParserConfig::default()
    };
    assert_eq!(Parser::from_start(odd).kernel(), Kernel::Scalar);
}

#[test]
fn known_shapes_agree() {
    let row = "1,\"a, b\",x\"\"y,\"q\"\"r\",\"\",,\"l1\r\nl2\",\"st\"ray,end\r\n";
    let mut input = row.repeat(20).into_bytes();
    input.extend_from_slice(&[b'z'; 200]);
    input.extend_from_slice(b",\"");
    input.extend_from_slice(&[b'y'; 100]);
    input.extend_from_slice(b"\"\n\n\r\r\n,,,\n\"open");
    let s = Setup {
        cfg: ParserConfig::default(),
        state: State::LineStart,
        stop_at: u64::MAX,
    };
    for step in [1, 7, 63, 64, 65, 200] {
        let cuts: Vec<usize> = (step..input.len()).step_by(step).collect();
        check(&input, &cuts, &s);
    }
}

/// A hash of every record and the final counters of one parse of `data` in 256 KiB slices.
fn digest(data: &[u8], kernel: Kernel) -> (u64, u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut p = Parser::from_start(ParserConfig::default()).with_kernel(kernel);
    let mut rec = RecordBuf::default();
    let mut records = 0;
    let hash = |rec: &RecordBuf, h: &mut std::collections::hash_map::DefaultHasher| {
        (
            &rec.text,
            &rec.ends,
            rec.start,
            rec.content_end,
            rec.start_line,
        )
            .hash(h);
        (rec.stray_quote, rec.too_large, rec.any_quoted).hash(h);
    };
    for slice in data.chunks(256 * 1024) {
        let mut off = 0;
        loop {
            let (out, used) = p.parse(&slice[off..], &mut rec);
            off += used;
            if out != Outcome::Record {
                break;
            }
            records += 1;
            hash(&rec, &mut h);
        }
    }
    if p.finish(&mut rec).expect("balanced quotes") == Outcome::Record {
        records += 1;
        hash(&rec, &mut h);
    }
    (p.quotes(), p.lines(), p.blank_lines()).hash(&mut h);
    (records, p.lines(), h.finish())
}

/// `TESSERA_BIG_CSV=bench-data/engine-256mib.csv cargo test -p tessera-engine --release --test
/// parse_kernels -- --ignored`: every kernel against the state machine alone on a real-size file.
#[test]
#[ignore]
fn kernels_agree_on_a_big_file() {
    let path = std::env::var("TESSERA_BIG_CSV").expect("TESSERA_BIG_CSV=<file>");
    let data = std::fs::read(&path).unwrap();
    let want = digest(&data, Kernel::Scalar);
    eprintln!("{path}: {} records, {} line breaks", want.0, want.1);
    for k in Kernel::all_available() {
        assert_eq!(digest(&data, k), want, "{k:?}");
    }
}
