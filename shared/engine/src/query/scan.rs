//! One byte range's records into a [`PartialState`], push-based: what a query task runs over
//! the bytes of its range as they arrive (an S3 body, a local file), and what
//! [`super::run_range`] runs over positioned reads. Records are owned and judged exactly as
//! the chunk worker does (the same ownership rule, start-state speculation and rejections), so
//! the answer covers the same rows as the job's outputs.
//!
//! Not here: reading (the caller owns the bytes), merging and the final step.

use crate::chunk::Feed;
use crate::dialect::Dialect;
use crate::parse::{ParserConfig, RecordBuf};
use crate::range::RangeReader;
use crate::split::{ChunkSummary, ChunkTask};

use super::error::QueryError;
use super::exec::PartialState;
use super::plan::Plan;

/// Ranges at least this long check UTF-8 and NUL bytes per fed slice ([`CleanRegion`]); a
/// shorter one would validate far more bytes than it owns (the guess window), so its records
/// are checked one by one. Both paths meet in the tests (short ranges against one long one).
const WHOLE_SLICE_CHECK_MIN: u64 = 64 << 10;

/// The text of a well-formed record, or `None` for a record the chunk worker would reject
/// (too large, stray quote, NUL byte, invalid UTF-8, wrong field count). `clean`: the record's
/// raw bytes lie in a region already known to be UTF-8 without NUL (then its unescaped text,
/// the raw bytes minus ASCII quotes and delimiters, is too, and every field end is a char
/// boundary).
#[inline]
pub(crate) fn well_formed(rec: &RecordBuf, ncols: usize, clean: bool) -> Option<&str> {
    if rec.too_large || rec.stray_quote || rec.ends.len() != ncols {
        return None;
    }
    if clean {
        // SAFETY: see above; the region was validated by `CleanRegion::extend`.
        return Some(unsafe { std::str::from_utf8_unchecked(&rec.text) });
    }
    let text = simdutf8::basic::from_utf8(&rec.text).ok()?;
    if memchr::memchr(0, rec.text.as_slice()).is_some()
        || !rec.ends.iter().all(|&e| text.is_char_boundary(e))
    {
        return None;
    }
    Some(text)
}

/// The file bytes `[start, end)` known to be valid UTF-8 without a NUL byte, grown one fed
/// slice at a time (one vectorised check per slice instead of one per record). A character
/// cut by a slice end is held (`tail`) and completed with the next slice's first bytes.
#[derive(Default)]
struct CleanRegion {
    start: u64,
    end: u64,
    tail: [u8; 4],
    tail_len: usize,
}

impl CleanRegion {
    fn extend(&mut self, pos: u64, bytes: &[u8]) {
        let lead = bytes
            .iter()
            .take(3)
            .take_while(|&&c| c & 0xC0 == 0x80)
            .count();
        let continues = pos == self.end + self.tail_len as u64 && self.completes(&bytes[..lead]);
        if continues {
            self.end = pos + lead as u64;
        } else {
            // A range's first slice (or the one after bad bytes) may begin inside a
            // character: the region starts after it.
            self.start = pos + lead as u64;
            self.end = self.start;
        }
        self.tail_len = 0;
        let rest = &bytes[lead..];
        let cut = char_cut(rest);
        let valid = match simdutf8::compat::from_utf8(&rest[..cut]) {
            Ok(_) => cut,
            Err(e) => e.valid_up_to(),
        };
        let valid = memchr::memchr(0, &rest[..valid]).unwrap_or(valid);
        self.end += valid as u64;
        if valid == cut {
            self.tail_len = rest.len() - cut;
            self.tail[..self.tail_len].copy_from_slice(&rest[cut..]);
        }
    }

    /// True when the held tail and `cont` (the next slice's leading continuation bytes) make
    /// whole characters (trivially, when nothing is held).
    fn completes(&self, cont: &[u8]) -> bool {
        if self.tail_len == 0 {
            return cont.is_empty();
        }
        let mut ch = [0u8; 8];
        ch[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        ch[self.tail_len..self.tail_len + cont.len()].copy_from_slice(cont);
        std::str::from_utf8(&ch[..self.tail_len + cont.len()]).is_ok()
    }

    fn holds(&self, rec: &RecordBuf) -> bool {
        rec.start >= self.start && rec.content_end <= self.end
    }
}

/// The length of `b` without a UTF-8 character cut at its end.
fn char_cut(b: &[u8]) -> usize {
    let n = b.len();
    for back in 1..=n.min(4) {
        let c = b[n - back];
        if c & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the leading one
        }
        let width = match c {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        return if width > back { n - back } else { n };
    }
    n
}

/// A query over one byte range, fed its bytes from [`crate::chunk::read_start`] on.
pub struct RangeQuery<'p> {
    plan: &'p Plan,
    reader: RangeReader,
    state: PartialState,
    region: CleanRegion,
    whole_slices: bool,
    pos: u64,
    err: Option<QueryError>,
}

impl<'p> RangeQuery<'p> {
    /// A scan of `task` in a file of `dialect`; `max_overrun`: how far past its end a range on
    /// a guessed start state reads before it gives up (validation then reads it again).
    pub fn new(task: &ChunkTask, dialect: &Dialect, plan: &'p Plan, max_overrun: u64) -> Self {
        let cfg = ParserConfig {
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            ..ParserConfig::default()
        };
        RangeQuery {
            plan,
            reader: RangeReader::new(task, cfg, max_overrun),
            state: PartialState::new(plan),
            region: CleanRegion::default(),
            whole_slices: task.end - task.start >= WHOLE_SLICE_CHECK_MIN,
            pos: crate::chunk::read_start(task),
            err: None,
        }
    }

    /// Pushes the next bytes; `Feed::Done` when the range needs no more.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Feed, QueryError> {
        if self.whole_slices {
            self.region.extend(self.pos, bytes);
        }
        self.pos += bytes.len() as u64;
        let RangeQuery {
            plan,
            reader,
            state,
            region,
            err,
            ..
        } = self;
        let mut on = |rec: &RecordBuf| record(plan, state, region, err, rec);
        let f = reader.feed(bytes, &mut on)?;
        match self.err.take() {
            Some(e) => Err(e),
            None => Ok(f),
        }
    }

    /// Ends the range (at the end of the input, or after `Feed::Done`): the partial state and
    /// what [`crate::split::validate`] needs.
    pub fn finish(self) -> Result<(PartialState, ChunkSummary), QueryError> {
        let RangeQuery {
            plan,
            reader,
            mut state,
            region,
            mut err,
            ..
        } = self;
        let mut on = |rec: &RecordBuf| record(plan, &mut state, &region, &mut err, rec);
        let summary = reader.finish(&mut on)?;
        match err {
            Some(e) => Err(e),
            None => Ok((state, summary)),
        }
    }
}

#[inline]
fn record(
    plan: &Plan,
    state: &mut PartialState,
    region: &CleanRegion,
    err: &mut Option<QueryError>,
    rec: &RecordBuf,
) {
    if err.is_some() {
        return;
    }
    match well_formed(rec, plan.ncols, region.holds(rec)) {
        Some(text) => {
            if let Err(e) = state.observe(plan, text, &rec.ends) {
                *err = Some(e);
            }
        }
        None => state.rejected_rows += 1,
    }
}
