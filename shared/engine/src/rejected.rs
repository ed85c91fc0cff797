//! The rejected output's format and the rebasing of a chunk's rejected part: a chunk numbers
//! its rejected rows' `source_line` from its own start (it cannot know the lines before it);
//! the stitcher adds the line base once every chunk's line count is known.
//!
//! Not here: writing rejected rows (see `chunk`), stitching parts (the pipeline's business).

use std::io::{Read, Write};

use crate::csv_write::write_field;
use crate::error::EngineError;
use crate::parse::{Outcome, Parser, ParserConfig, RecordBuf};

/// First line of every rejected output (chunk parts have no header; the stitcher writes it).
pub const REJECTED_HEADER: &str = "source_byte_offset,source_line,reason,raw,detail\n";

/// Copies a chunk's rejected part to `out`, turning its chunk-local `source_line` into an absolute
/// 1-based line number (rows of 4 fields, from workers older than the `detail` column, get an
/// empty `detail`): `line_base` = 1 + header line breaks + the `newline_count_in_range` of all
/// earlier chunks. Streams: memory is one row.
pub fn rebase_rejected<R: Read, W: Write>(
    mut part: R,
    line_base: u64,
    out: &mut W,
) -> Result<(), EngineError> {
    let mut rebaser = RejectedRebaser::new(line_base);
    let mut buf = vec![0u8; 64 * 1024];
    let mut rows = Vec::new();
    loop {
        let n = part
            .read(&mut buf)
            .map_err(|e| EngineError::io("reading a rejected part", e))?;
        if n == 0 {
            break;
        }
        rebaser.feed(&buf[..n], &mut rows)?;
        out.write_all(&rows)
            .map_err(|e| EngineError::io("writing the rejected output", e))?;
        rows.clear();
    }
    rebaser.finish(&mut rows)?;
    out.write_all(&rows)
        .map_err(|e| EngineError::io("writing the rejected output", e))
}

/// [`rebase_rejected`] pushed a piece at a time (for a part streamed from S3): the rows are
/// appended to `out` as their records complete; memory is one row.
pub struct RejectedRebaser {
    parser: Parser,
    rec: RecordBuf,
    line_base: u64,
}

impl RejectedRebaser {
    /// A rebaser adding `line_base` to every row's chunk-local `source_line`.
    pub fn new(line_base: u64) -> Self {
        RejectedRebaser {
            parser: Parser::from_start(ParserConfig {
                max_field_bytes: usize::MAX / 4,
                max_record_bytes: usize::MAX / 4,
                ..ParserConfig::default()
            }),
            rec: RecordBuf::default(),
            line_base,
        }
    }

    /// Takes the next bytes of the part; complete rows are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), EngineError> {
        let mut off = 0;
        while off < bytes.len() {
            let (o, used) = self.parser.parse(&bytes[off..], &mut self.rec);
            off += used;
            if o == Outcome::Record {
                self.emit(out)?;
            }
        }
        Ok(())
    }

    /// Ends the part: its last row (if it had no line break) is appended to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), EngineError> {
        if self.parser.finish(&mut self.rec)? == Outcome::Record {
            self.emit(out)?;
        }
        Ok(())
    }

    fn emit(&self, row: &mut Vec<u8>) -> Result<(), EngineError> {
        let rec = &self.rec;
        let field = |i: usize| {
            let s = if i == 0 { 0 } else { rec.ends[i - 1] };
            &rec.text[s..rec.ends[i]]
        };
        if rec.ends.len() != 4 && rec.ends.len() != 5 {
            return Err(EngineError::InvalidOption {
                detail: "a rejected part row does not have 5 fields".into(),
            });
        }
        let local: u64 = std::str::from_utf8(field(1))
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| EngineError::InvalidOption {
                detail: "a rejected part row has no numeric source_line".into(),
            })?;
        row.extend_from_slice(field(0));
        let _ = write!(row, ",{},", local + self.line_base);
        row.extend_from_slice(field(2));
        row.push(b',');
        write_field(row, field(3));
        row.push(b',');
        if rec.ends.len() == 5 {
            write_field(row, field(4));
        }
        row.push(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod rebase_tests {
    use super::*;

    /// A rejected part (chunk-local lines; a 4-field row from an older worker; raw values with
    /// quotes, commas and line breaks) rebased whole, and pushed in pieces of every size from 1
    /// to 9 bytes: the same rows, line numbers moved by the base, nothing lost.
    #[test]
    fn rebasing_in_pieces_equals_rebasing_whole() {
        let part = concat!(
            "120,1,ragged_row,\"a,b\",expected 3 fields\n",
            "180,2,rule:amount_range,\"x,\"\"quoted\"\"\ny\",amount 5 is above 4\n",
            "260,4,invalid_utf8,z\n",
            "300,7,stray_quote,\"q\"\"\",",
        );
        let want = concat!(
            "120,101,ragged_row,\"a,b\",expected 3 fields\n",
            "180,102,rule:amount_range,\"x,\"\"quoted\"\"\ny\",amount 5 is above 4\n",
            "260,104,invalid_utf8,z,\n",
            "300,107,stray_quote,\"q\"\"\",\n",
        );
        let mut whole = Vec::new();
        rebase_rejected(part.as_bytes(), 100, &mut whole).unwrap();
        assert_eq!(String::from_utf8(whole).unwrap(), want);
        for size in 1..=9 {
            let mut r = RejectedRebaser::new(100);
            let mut out = Vec::new();
            for piece in part.as_bytes().chunks(size) {
                r.feed(piece, &mut out).unwrap();
            }
            r.finish(&mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want, "pieces of {size}");
        }
        let mut out = Vec::new();
        let bad = RejectedRebaser::new(1).feed(b"1,x,ragged_row,r,d\n", &mut out);
        assert!(
            bad.is_err(),
            "a row without a numeric line is an error, not dropped"
        );
    }
}
