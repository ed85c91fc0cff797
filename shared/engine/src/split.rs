//! Byte-range planning and the quote-parity speculation that keeps splitting exact.
//!
//! The parser's "inside quotes" state at offset p is the parity of quote bytes in [0, p), so the
//! true start state of chunk i is the parity of the quote counts of chunks 0..i. Chunks run in
//! parallel with a *guessed* start state ([`guess_start_in_quotes`]) and report their quote count
//! (independent of the guess); [`validate`] then lists the chunks whose guess was wrong so they are
//! re-run with the known state. See docs/engine.md for the argument.
//!
//! Not here: reading bytes or parsing records (see `chunk`).

use memchr::memchr_iter;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// How many bytes after a chunk's start the guess looks at.
pub const GUESS_WINDOW: usize = 64 * 1024;

/// One unit of work: the records whose first byte is in `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTask {
    /// Position in the file's chunk order (0-based). Chunk 0 starts at the first data byte.
    pub index: u32,
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range.
    pub end: u64,
    /// `Some` = known quote state at `start`; `None` = guess it (validated at merge).
    pub start_in_quotes: Option<bool>,
}

/// Splits `[header_len, file_size)` into ranges of `chunk_size` bytes (the last may be shorter).
/// Chunk 0's start state is known (outside quotes, since the header ends outside quotes); the
/// others are guessed. An empty data region gives no chunks.
pub fn plan(file_size: u64, header_len: u64, chunk_size: u64) -> Vec<ChunkTask> {
    let chunk_size = chunk_size.max(1);
    let mut out = Vec::new();
    let mut start = header_len;
    while start < file_size {
        let end = start.saturating_add(chunk_size).min(file_size);
        out.push(ChunkTask {
            index: out.len() as u32,
            start,
            end,
            start_in_quotes: if out.is_empty() { Some(false) } else { None },
        });
        start = end;
    }
    out
}

/// Guesses whether `start` is inside quotes from the byte before it (`prev`) and the bytes
/// after it (`window`). Looks at quotes in order; the first unambiguous one decides:
/// an *opening* quote is preceded by a delimiter, CR, LF (or nothing) and followed by an
/// ordinary byte; a *closing* quote is preceded by an ordinary byte and followed by a delimiter,
/// CR or LF. Default: outside quotes.
pub fn guess_start_in_quotes(prev: Option<u8>, window: &[u8], delimiter: u8, quote: u8) -> bool {
    let sep = |b: u8| b == delimiter || b == b'\r' || b == b'\n';
    for (k, i) in memchr_iter(quote, window).enumerate() {
        let before = if i == 0 { prev } else { Some(window[i - 1]) };
        let after = window.get(i + 1).copied();
        let opening = before.is_none_or(sep) && after.is_some_and(|a| !sep(a) && a != quote);
        let closing = after.is_some_and(sep) && before.is_some_and(|b| !sep(b) && b != quote);
        let odd_before = k % 2 == 1;
        if opening {
            // Outside quotes at i: the start state equals the parity of the quotes before i.
            return odd_before;
        }
        if closing {
            return !odd_before;
        }
    }
    false
}

/// What validation needs from a chunk's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSummary {
    /// Chunk index.
    pub index: u32,
    /// The start state the chunk was processed with.
    pub assumed_start_in_quotes: bool,
    /// Quote bytes in `[start, end)` (independent of the start state).
    pub quote_count_in_range: u64,
    /// Set when the chunk's last owned record was still inside quotes at end of file: the offset
    /// of the quote that opened it. Only an error if the chunk's start state was right.
    pub open_quote_at_eof: Option<u64>,
    /// The chunk stopped reading past its end on a guessed state: always re-run.
    #[serde(default)]
    pub abandoned: bool,
}

/// Returns the chunks (by index, in order) whose assumed start state is wrong (or that were
/// abandoned), with the correct state to re-run them with. `summaries` must hold every chunk of the file, in any order.
pub fn validate(summaries: &[ChunkSummary]) -> Vec<(u32, bool)> {
    let mut sorted: Vec<&ChunkSummary> = summaries.iter().collect();
    sorted.sort_by_key(|s| s.index);
    let mut in_quotes = false;
    let mut rerun = Vec::new();
    for s in sorted {
        if s.assumed_start_in_quotes != in_quotes || s.abandoned {
            rerun.push((s.index, in_quotes));
        }
        in_quotes ^= s.quote_count_in_range % 2 == 1;
    }
    rerun
}

/// After re-runs (so every start state is right): fails with `unbalanced_quote` if the file
/// ends inside a quoted field.
pub fn check_complete(summaries: &[ChunkSummary]) -> Result<(), EngineError> {
    match summaries.iter().filter_map(|s| s.open_quote_at_eof).min() {
        Some(offset) => Err(EngineError::UnbalancedQuote { offset }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_the_data_region() {
        let p = plan(10, 3, 4);
        let ranges: Vec<(u64, u64)> = p.iter().map(|t| (t.start, t.end)).collect();
        assert_eq!(ranges, vec![(3, 7), (7, 10)]);
        assert_eq!(p[0].start_in_quotes, Some(false));
        assert_eq!(p[1].start_in_quotes, None);
        assert!(plan(3, 3, 4).is_empty());
        assert_eq!(plan(5, 0, 0).len(), 5, "chunk size 0 is treated as 1");
    }

    #[test]
    fn guess_reads_opening_and_closing_quotes() {
        // `,"abc` : opening quote -> start is outside.
        assert!(!guess_start_in_quotes(
            Some(b'x'),
            b"1,\"abc\",2",
            b',',
            b'"'
        ));
        // `abc",2` : closing quote first -> start is inside.
        assert!(guess_start_in_quotes(Some(b'x'), b"abc\",2\n", b',', b'"'));
        // no quotes -> outside
        assert!(!guess_start_in_quotes(None, b"a,b\n", b',', b'"'));
    }

    #[test]
    fn validate_finds_wrong_guesses() {
        let s = |index, assumed, q| ChunkSummary {
            index,
            assumed_start_in_quotes: assumed,
            quote_count_in_range: q,
            open_quote_at_eof: None,
            abandoned: false,
        };
        let v = validate(&[s(0, false, 1), s(1, false, 2), s(2, true, 1), s(3, true, 0)]);
        assert_eq!(v, vec![(1, true), (3, false)]);
    }
}
