//! `range::RangeReader` splits exactly: for every well-formed CSV and every range size, the
//! records of all ranges (mispredicted ranges read again after `split::validate`) are the records
//! of one sequential parse by the `csv` crate — the property export jobs rely on.

use proptest::prelude::*;
use tessera_engine::chunk::{read_start, Feed};
use tessera_engine::parse::{ParserConfig, RecordBuf};
use tessera_engine::range::RangeReader;
use tessera_engine::split::{plan, validate, ChunkTask};

type Records = Vec<Vec<Vec<u8>>>;

fn field_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![b'a', b'b', b',', b'"', b'\n', b'\r', b' ']),
        0..24,
    )
}

/// Writes records as CSV the way the engine writes outputs: quoted when needed (and a lone
/// empty field as `""`, so it is not a blank line), with LF or CRLF terminators.
fn write_csv(header: &[u8], rows: &[Vec<Vec<u8>>], crlf: &[bool]) -> Vec<u8> {
    let mut out = header.to_vec();
    for (row, &crlf) in rows.iter().zip(crlf.iter().cycle()) {
        for (i, f) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let quote = f.is_empty() && row.len() == 1
                || f.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
            if quote {
                out.push(b'"');
                for &b in f {
                    if b == b'"' {
                        out.push(b'"');
                    }
                    out.push(b);
                }
                out.push(b'"');
            } else {
                out.extend_from_slice(f);
            }
        }
        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    out
}

fn reference(data: &[u8]) -> Records {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(data)
        .byte_records()
        .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
        .collect()
}

fn fields(rec: &RecordBuf) -> Vec<Vec<u8>> {
    let mut s = 0;
    rec.ends
        .iter()
        .map(|&e| {
            let v = rec.text[s..e].to_vec();
            s = e;
            v
        })
        .collect()
}

fn by_ranges(data: &[u8], hlen: u64, size: u64, piece: usize) -> Records {
    let tasks = plan(data.len() as u64, hlen, size);
    let read = |t: &ChunkTask| {
        let mut r = RangeReader::new(t, ParserConfig::default(), 1 << 20);
        let mut got = Vec::new();
        let mut keep = |rec: &RecordBuf| got.push(fields(rec));
        for p in data[read_start(t) as usize..].chunks(piece) {
            if r.feed(p, &mut keep).unwrap() == Feed::Done {
                break;
            }
        }
        let summary = r.finish(&mut keep).unwrap();
        (got, summary)
    };
    let mut outs: Vec<_> = tasks.iter().map(read).collect();
    let summaries: Vec<_> = outs.iter().map(|o| o.1).collect();
    for (i, q) in validate(&summaries) {
        let mut t = tasks[i as usize];
        t.start_in_quotes = Some(q);
        outs[i as usize] = read(&t);
    }
    outs.into_iter().flat_map(|o| o.0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn ranges_equal_a_sequential_parse(
        rows in prop::collection::vec(prop::collection::vec(field_strategy(), 1..4), 0..40),
        crlf in prop::collection::vec(any::<bool>(), 1..4),
        size in 1u64..200,
        piece in 1usize..64,
    ) {
        let header = b"h1,h2,h3\n";
        let data = write_csv(header, &rows, &crlf);
        let want = reference(&data);
        prop_assert_eq!(want.len(), rows.len());
        prop_assert_eq!(by_ranges(&data, header.len() as u64, size, piece), want);
    }
}
