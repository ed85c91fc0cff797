//! The records of one byte range, with exactly the chunk worker's ownership rule and start-state
//! speculation, handed to the caller one by one: for passes over a CSV that only *read* records
//! (an export job converting a job's output range by range), without the chunk's profile,
//! rules and clean/rejected writers.
//!
//! Same contract as [`crate::chunk::ChunkProcessor`]: the caller reads from
//! [`crate::byte_range::read_start`] (one byte before `start`), pushes slices of any size into
//! [`RangeReader::feed`] until it answers [`Feed::Done`] or the input ends, then calls
//! [`RangeReader::finish`]. The reader owns the records whose first byte lies in `[start, end)`
//! (reading past `end` to finish the last one). A range whose start state was *guessed* reports
//! its quote count in a [`ChunkSummary`], so [`crate::split::validate`] finds the ranges to read
//! again with the known state, exactly as for chunks.
//!
//! Not here: judging records (UTF-8, field counts: the caller's business), any I/O.

use crate::byte_range::{Begin, RangeStart};
use crate::error::EngineError;
use crate::parse::{Outcome, Parser, ParserConfig, RecordBuf};
use crate::split::{ChunkSummary, ChunkTask};

pub use crate::byte_range::Feed;

/// Reads the records a byte range owns. See the module docs.
pub struct RangeReader {
    task: ChunkTask,
    parser: Option<Parser>,
    start: RangeStart,
    /// Offset of the next byte `run` will see.
    pos: u64,
    rec: RecordBuf,
    /// Quote bytes in `[start, end)`, once the parser has passed `end`.
    quotes_at_end: Option<u64>,
    done: bool,
    abandoned: bool,
    max_overrun: u64,
    records: u64,
}

impl RangeReader {
    /// A reader for `task` in a file of `cfg`'s dialect. `max_overrun`: like
    /// `ChunkOptions::max_speculative_overrun_bytes`, how far past `end` a range on a guessed
    /// start state may read before it gives up (it is then read again with the known state).
    pub fn new(task: &ChunkTask, cfg: ParserConfig, max_overrun: u64) -> Self {
        RangeReader {
            task: *task,
            parser: None,
            start: RangeStart::new(task, cfg),
            pos: task.start,
            rec: RecordBuf::default(),
            quotes_at_end: None,
            done: false,
            abandoned: false,
            max_overrun,
            records: 0,
        }
    }

    /// Records handed out so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Pushes the next bytes (starting at `read_start` for the first call); `on_record` gets
    /// every owned record, in order.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        on_record: &mut impl FnMut(&RecordBuf),
    ) -> Result<Feed, EngineError> {
        if self.done {
            return Ok(Feed::Done);
        }
        if self.parser.is_none() {
            let Begin::Start(parser, guessed_from, rest) = self.start.begin(bytes) else {
                return Ok(Feed::NeedMore);
            };
            self.parser = Some(*parser);
            if let Some(buf) = guessed_from {
                self.run(&buf, on_record);
            }
            bytes = rest;
        }
        if !self.done {
            self.run(bytes, on_record);
        }
        if !self.done
            && self.task.start_in_quotes.is_none()
            && self.pos > self.task.end.saturating_add(self.max_overrun)
        {
            // Most likely a wrong guess reading on to EOF; validation re-reads this range.
            self.abandoned = true;
            self.done = true;
        }
        Ok(if self.done {
            Feed::Done
        } else {
            Feed::NeedMore
        })
    }

    /// Ends the range (at end of input, or after `Feed::Done`) and returns what validation
    /// needs. A file that ends inside quotes is an error when the start state was known, and
    /// reported in the summary (`open_quote_at_eof`) when it was guessed.
    pub fn finish(
        mut self,
        on_record: &mut impl FnMut(&RecordBuf),
    ) -> Result<ChunkSummary, EngineError> {
        if self.parser.is_none() {
            let (parser, guessed_from) = self.start.begin_at_eof();
            self.parser = Some(parser);
            if let Some(buf) = guessed_from {
                self.run(&buf, on_record);
            }
        }
        let mut open_quote_at_eof = None;
        if !self.done {
            let parser = self.parser.as_mut().expect("parser started above");
            let end = self.start.end(parser, &mut self.rec)?;
            if end.last_record {
                self.records += 1;
                on_record(&self.rec);
            }
            open_quote_at_eof = end.open_quote_at_eof;
        }
        let quotes = match self.quotes_at_end {
            Some(q) => q,
            None => self.parser.as_ref().map_or(0, Parser::quotes),
        };
        Ok(ChunkSummary {
            index: self.task.index,
            assumed_start_in_quotes: self.start.assumed,
            quote_count_in_range: quotes,
            open_quote_at_eof,
            abandoned: self.abandoned,
        })
    }

    /// Runs bytes through the parser, splitting them at `end` to take the range's quote count.
    fn run(&mut self, bytes: &[u8], on_record: &mut impl FnMut(&RecordBuf)) {
        if self.quotes_at_end.is_none() {
            let left = self.task.end.saturating_sub(self.pos);
            if (bytes.len() as u64) >= left {
                let (a, b) = bytes.split_at(left as usize);
                self.run_part(a, on_record);
                self.quotes_at_end = Some(self.parser.as_ref().map_or(0, Parser::quotes));
                if !self.done {
                    self.run_part(b, on_record);
                }
                return;
            }
        }
        self.run_part(bytes, on_record);
    }

    fn run_part(&mut self, input: &[u8], on_record: &mut impl FnMut(&RecordBuf)) {
        let mut off = 0;
        let parser = self.parser.as_mut().expect("parser started");
        loop {
            let (out, used) = parser.parse(&input[off..], &mut self.rec);
            off += used;
            match out {
                Outcome::NeedInput => break,
                Outcome::Stop => {
                    self.done = true;
                    break;
                }
                Outcome::Record => {
                    self.records += 1;
                    on_record(&self.rec);
                }
            }
        }
        self.pos += input.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::State;
    use crate::split::{plan, validate, GUESS_WINDOW};

    type Records = Vec<(u64, Vec<Vec<u8>>)>;

    /// Every record of `data` (header `hlen` bytes) read range by range, with mispredicted
    /// ranges read again, as `(start offset, fields)`, and how many ranges were read again.
    fn by_ranges(data: &[u8], hlen: u64, size: u64, piece: usize) -> (Records, usize) {
        let tasks = plan(data.len() as u64, hlen, size);
        let read = |t: &ChunkTask| {
            let mut r = RangeReader::new(t, ParserConfig::default(), 1 << 20);
            let mut got = Vec::new();
            let mut keep = |rec: &RecordBuf| got.push(fields(rec));
            let from = crate::byte_range::read_start(t) as usize;
            for p in data[from..].chunks(piece) {
                if r.feed(p, &mut keep).unwrap() == Feed::Done {
                    break;
                }
            }
            let s = r.finish(&mut keep).unwrap();
            (got, s)
        };
        let mut outs: Vec<_> = tasks.iter().map(read).collect();
        let summaries: Vec<ChunkSummary> = outs.iter().map(|o| o.1).collect();
        let reruns = validate(&summaries);
        for &(i, q) in &reruns {
            let mut t = tasks[i as usize];
            t.start_in_quotes = Some(q);
            outs[i as usize] = read(&t);
        }
        (outs.into_iter().flat_map(|o| o.0).collect(), reruns.len())
    }

    fn fields(rec: &RecordBuf) -> (u64, Vec<Vec<u8>>) {
        let mut s = 0;
        let f = rec
            .ends
            .iter()
            .map(|&e| {
                let v = rec.text[s..e].to_vec();
                s = e;
                v
            })
            .collect();
        (rec.start, f)
    }

    /// The reference: one parser over the whole data region.
    fn sequential(data: &[u8], hlen: u64) -> Records {
        let mut p = Parser::new(ParserConfig::default(), State::LineStart, hlen, u64::MAX);
        let mut rec = RecordBuf::default();
        let mut got = Vec::new();
        let mut input = &data[hlen as usize..];
        while !input.is_empty() {
            let (o, used) = p.parse(input, &mut rec);
            input = &input[used..];
            if o == Outcome::Record {
                got.push(fields(&rec));
            }
        }
        if p.finish(&mut rec).unwrap() == Outcome::Record {
            got.push(fields(&rec));
        }
        got
    }

    fn tricky(rows: usize, long_at: Option<usize>) -> Vec<u8> {
        let long = "y\n\"\"".repeat(GUESS_WINDOW / 3);
        let mut data = b"a,b,c\n".to_vec();
        for i in 0..rows {
            let row = match i % 5 {
                _ if Some(i) == long_at => format!("{i},\"{long}\",end\n"),
                0 => format!("{i},\"x\ny\",\"q\"\"\"\n"),
                1 => format!("{i},\"l1\r\nl2,\",z\r\n"),
                2 => format!("{i},plain,\"\"\n"),
                3 => format!("{i},,\n\n"),
                _ => format!("\"{i}\",\",\n,\",w\n"),
            };
            data.extend_from_slice(row.as_bytes());
        }
        data
    }

    #[test]
    fn ranges_agree_with_one_sequential_read() {
        // Quoted newlines (LF and CRLF), doubled quotes, delimiters inside quotes and blank
        // lines, so range boundaries fall everywhere, inside quoted fields too.
        let data = tricky(300, None);
        let want = sequential(&data, 6);
        assert_eq!(want.len(), 300);
        for size in [1, 7, 64, 999, 1 << 20] {
            for piece in [1, 13, 65536] {
                if size < 64 && piece == 1 {
                    continue; // slow, and adds nothing over piece 13
                }
                let (got, _) = by_ranges(&data, 6, size, piece);
                assert_eq!(got, want, "range {size}, piece {piece}");
            }
        }
    }

    #[test]
    fn mispredicted_ranges_are_read_again() {
        // A quoted field longer than the guess window full of `\n""` makes the guesses of the
        // ranges that start inside it wrong; validation must catch every one.
        let data = tricky(60, Some(23));
        let want = sequential(&data, 6);
        assert_eq!(want.len(), 60);
        let mut reruns = 0;
        for size in [4097, 4099, 30_001, 1 << 20] {
            let (got, n) = by_ranges(&data, 6, size, 8192);
            assert_eq!(got, want, "range {size}");
            reruns += n;
        }
        assert!(reruns > 0, "the long field should defeat some guesses");
    }
}
