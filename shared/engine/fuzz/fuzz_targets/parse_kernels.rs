//! Arbitrary bytes: the parser with each structural-index kernel this CPU has (portable, SSE2,
//! AVX2 + PCLMULQDQ) must give exactly what the byte state machine alone (`Kernel::Scalar`)
//! gives: the same outcomes, records and counters, fed whole and in fuzzer-chosen pieces,
//! with fuzzer-chosen delimiter, start state and size limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::parse::{Kernel, Outcome, Parser, ParserConfig, RecordBuf, State};

/// Everything observable, in order.
fn trace(
    input: &[u8],
    piece: usize,
    kernel: Kernel,
    cfg: ParserConfig,
    state: State,
) -> Vec<String> {
    let mut p = Parser::new(cfg, state, 0, u64::MAX).with_kernel(kernel);
    let mut rec = RecordBuf::default();
    let mut ev = Vec::new();
    let show = |rec: &RecordBuf, p: &Parser| {
        format!(
            "rec {:?} {:?} {} {} {} {} {} {} q@{}",
            (!rec.too_large).then_some(&rec.text),
            rec.ends,
            rec.start,
            rec.content_end,
            rec.start_line,
            rec.stray_quote,
            rec.too_large,
            rec.any_quoted,
            p.quote_open_at()
        )
    };
    for chunk in input.chunks(piece.max(1)) {
        let mut off = 0;
        loop {
            let (out, used) = p.parse(&chunk[off..], &mut rec);
            off += used;
            ev.push(format!(
                "{out:?} {used} {} {} {} {} {:?}",
                p.pos(),
                p.quotes(),
                p.lines(),
                p.blank_lines(),
                p.state()
            ));
            match out {
                Outcome::Record => ev.push(show(&rec, &p)),
                _ => break,
            }
        }
    }
    let fin = p.finish(&mut rec).map_err(|e| e.to_string());
    if fin == Ok(Outcome::Record) {
        ev.push(show(&rec, &p));
    }
    ev.push(format!("finish {fin:?}"));
    ev
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let piece = 1 + input[0] as usize * 3;
    let delimiter = [b',', b';', b'\t', b'|'][(input[1] & 3) as usize];
    let state = [
        State::LineStart,
        State::SkipOut,
        State::SkipIn,
        State::LineStart,
    ][(input[1] >> 2 & 3) as usize];
    let mut cfg = ParserConfig {
        delimiter,
        ..ParserConfig::default()
    };
    if input[2] & 1 == 1 {
        cfg.max_field_bytes = 1 + (input[2] >> 1) as usize % 40;
        cfg.max_record_bytes = 1 + (input[2] >> 1) as usize * 2;
    }
    let data = &input[3..];
    let want = trace(data, piece, Kernel::Scalar, cfg, state);
    let whole = trace(data, usize::MAX, Kernel::Scalar, cfg, state);
    for k in Kernel::all_available() {
        assert_eq!(
            trace(data, piece, k, cfg, state),
            want,
            "{k:?} in pieces of {piece}"
        );
        assert_eq!(trace(data, usize::MAX, k, cfg, state), whole, "{k:?} whole");
    }
});
