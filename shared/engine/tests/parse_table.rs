//! Table tests of the state machine, fed one byte at a time and all at once: both must give
//! the same records, flags and counters.

use tessera_engine::parse::{Outcome, Parser, ParserConfig, RecordBuf};

#[derive(Debug, PartialEq)]
struct Rec {
    fields: Vec<String>,
    stray: bool,
    start: u64,
    end: u64,
}

#[derive(Debug, PartialEq)]
struct Run {
    recs: Vec<Rec>,
    blank: u64,
    quotes: u64,
    lines: u64,
    err: Option<String>,
}

fn take(rec: &RecordBuf) -> Rec {
    let mut s = 0;
    Rec {
        fields: rec
            .ends
            .iter()
            .map(|&e| {
                let f = String::from_utf8_lossy(&rec.text[s..e]).into_owned();
                s = e;
                f
            })
            .collect(),
        stray: rec.stray_quote,
        start: rec.start,
        end: rec.content_end,
    }
}

fn run(input: &[u8], step: usize) -> Run {
    let mut p = Parser::from_start(ParserConfig::default());
    let mut rec = RecordBuf::default();
    let mut recs = Vec::new();
    for piece in input.chunks(step.max(1)) {
        let mut off = 0;
        while off < piece.len() {
            let (o, used) = p.parse(&piece[off..], &mut rec);
            off += used;
            if o == Outcome::Record {
                recs.push(take(&rec));
            }
        }
    }
    let err = match p.finish(&mut rec) {
        Ok(Outcome::Record) => {
            recs.push(take(&rec));
            None
        }
        Ok(_) => None,
        Err(e) => Some(format!("{}@{}", e.code(), p.quote_open_at())),
    };
    Run {
        recs,
        blank: p.blank_lines(),
        quotes: p.quotes(),
        lines: p.lines(),
        err,
    }
}

fn fields(r: &Run) -> Vec<Vec<&str>> {
    r.recs
        .iter()
        .map(|r| r.fields.iter().map(String::as_str).collect())
        .collect()
}

#[test]
fn table() {
    // (input, records, blank lines, stray flags)
    type Case = (&'static [u8], &'static [&'static [&'static str]], u64);
    let cases: &[Case] = &[
        (b"", &[], 0),
        (b"a", &[&["a"]], 0),
        (b"a,b\n", &[&["a", "b"]], 0),
        (b"a,b\r\nc,d", &[&["a", "b"], &["c", "d"]], 0),
        (b"a\rb\r\n\nc", &[&["a"], &["b"], &["c"]], 1),
        (b"\n\r\n\r", &[], 3),
        (b",\n", &[&["", ""]], 0),
        (b"\"\"\n", &[&[""]], 0),
        (b"\"a,b\",\"c\nd\"\n", &[&["a,b", "c\nd"]], 0),
        (b"\"a\"\"b\"", &[&["a\"b"]], 0),
        (b"\"\"\"\"", &[&["\""]], 0),
        (b"x,\"y\r\n\"\r\n", &[&["x", "y\r\n"]], 0),
        (b"\xC3\xA9,\xE6\x97\xA5\n", &[&["\u{e9}", "\u{65e5}"]], 0),
        (b"a,\n", &[&["a", ""]], 0),
    ];
    for (input, want, blank) in cases {
        for step in [1, 2, 3, 1000] {
            let r = run(input, step);
            assert_eq!(fields(&r), want.to_vec(), "{input:?} step {step}");
            assert_eq!(r.blank, *blank, "{input:?} blank lines");
            assert!(r.recs.iter().all(|r| !r.stray), "{input:?} no stray");
            assert_eq!(r.err, None);
            assert_eq!(r, run(input, 1000), "{input:?} step {step} differs");
        }
    }
}

#[test]
fn stray_quotes_flag_the_record_but_follow_parity() {
    // `a"b` opens quotes: the newline is inside, the record ends at the next outside newline.
    let r = run(b"a\"b\n,c\"\nz\n", 1);
    assert_eq!(r.recs.len(), 2);
    assert!(r.recs[0].stray);
    assert_eq!(r.recs[0].end, 7);
    assert_eq!(fields(&r)[1], ["z"]);
    // Text after a closing quote.
    let r = run(b"\"ab\"c,d\ne\n", 1);
    assert!(r.recs[0].stray);
    assert!(!r.recs[1].stray);
    assert_eq!(r.quotes, 2);
}

#[test]
fn counters_and_offsets() {
    let r = run(b"a,\"x\r\ny\"\r\n\rb\n", 1);
    assert_eq!(r.quotes, 2);
    // breaks: CRLF inside quotes, CRLF terminator, lone CR (blank), LF
    assert_eq!(r.lines, 4);
    assert_eq!(r.blank, 1);
    assert_eq!((r.recs[0].start, r.recs[0].end), (0, 8));
    assert_eq!((r.recs[1].start, r.recs[1].end), (11, 12));
}

#[test]
fn unbalanced_quote_reports_where_it_opened() {
    let r = run(b"a,b\n1,\"open\n2,3\n", 1);
    assert_eq!(r.err.as_deref(), Some("unbalanced_quote@6"));
    let r = run(b"\"a\"\"b", 2);
    assert_eq!(r.err.as_deref(), Some("unbalanced_quote@0"));
}

#[test]
fn limits_bound_memory_and_flag_the_record() {
    let cfg = ParserConfig {
        max_field_bytes: 4,
        ..ParserConfig::default()
    };
    let mut p = Parser::from_start(cfg);
    let mut rec = RecordBuf::default();
    let input = b"abcdefgh,1\nok,2\n";
    let mut got = Vec::new();
    for b in input.chunks(1) {
        let (o, _) = p.parse(b, &mut rec);
        if o == Outcome::Record {
            got.push((rec.too_large, rec.text.len()));
        }
    }
    assert!(
        got[0].0 && got[0].1 <= 4,
        "buffering stops at the limit: {got:?}"
    );
    assert_eq!(got[1], (false, 3));
}
