//! The CSV dialect and the sniffer that guesses it from the first bytes of a file: delimiter
//! (`,` `;` tab `|`), quote, header presence and names, line ending, BOM, and encoding (UTF-8
//! only; UTF-16 is refused). Explicit overrides always win over guesses.
//!
//! Header names are made usable deterministically rather than refused: an empty name becomes
//! `col_<n>` (1-based position), a repeated name gets `_2`, `_3`, ... (the first keeps its name).
//! Without a header the columns are `col_1..col_n`, n = the first record's field count. A first
//! record of more than [`MAX_COLUMNS`] fields is refused (`too_many_columns`). Sniffing is
//! linear in the size of the bytes given.
//!
//! Not here: parsing the data records (see `parse` and `chunk`).

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::names::UniqueNames;
use crate::parse::{count_line_breaks, Outcome, Parser, ParserConfig, RecordBuf};

/// The UTF-8 byte order mark.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Delimiters the sniffer tries, in order of preference on ties.
pub const CANDIDATE_DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
/// How many leading records the sniffer looks at to choose a delimiter.
const SNIFF_RECORDS: usize = 64;
/// The most columns a file may have (header names, or fields of the first record without a
/// header). The column list is stored in the job record (DynamoDB items hold at most 400 KB)
/// and sent in every WebSocket progress message (frames of at most 128 KiB); 10,000 names of
/// ~10 bytes fit both, with room for the rest. A wider file fails `too_many_columns`.
pub const MAX_COLUMNS: usize = 10_000;

/// How records end in this file (as first seen; mixed endings are still parsed correctly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LineEnding {
    /// `\n`
    #[default]
    Lf,
    /// `\r\n`
    Crlf,
    /// `\r`
    Cr,
}

/// Everything needed to parse the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialect {
    /// Field separator byte.
    pub delimiter: u8,
    /// Quote byte.
    pub quote: u8,
    /// Whether the first record is a header.
    pub has_header: bool,
    /// The first line ending seen.
    pub line_ending: LineEnding,
    /// Whether the file starts with a UTF-8 BOM (skipped).
    pub bom: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            delimiter: b',',
            quote: b'"',
            has_header: true,
            line_ending: LineEnding::Lf,
            bom: false,
        }
    }
}

impl Dialect {
    /// Checks that the delimiter and quote can work together.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |b: u8| b == b'\r' || b == b'\n' || b == 0;
        if bad(self.delimiter) || bad(self.quote) || self.delimiter == self.quote {
            return Err(EngineError::InvalidOption {
                detail: format!(
                    "delimiter {:?} and quote {:?} must be different and must not be CR, LF or NUL",
                    self.delimiter as char, self.quote as char
                ),
            });
        }
        Ok(())
    }
}

/// Options the user set explicitly; `None` means "sniff it".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialectOverrides {
    /// Field separator.
    pub delimiter: Option<u8>,
    /// Quote character.
    pub quote: Option<u8>,
    /// Whether the first record is a header.
    pub has_header: Option<bool>,
}

/// What the sniffer found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sniffed {
    /// The dialect.
    pub dialect: Dialect,
    /// Column names (renamed to be unique and non-empty), or `col_1..col_n` without a header.
    pub columns: Vec<String>,
    /// Bytes before the first data record: BOM, blank lines before the header, the header and its
    /// terminator. Data ranges start here.
    pub header_len: u64,
    /// Physical line breaks within `header_len` (to number the data lines absolutely).
    pub header_lines: u64,
}

/// Sniffs from `first_bytes`, treating them as the whole file. Use [`sniff_with_size`] when they
/// may be only a prefix.
pub fn sniff(first_bytes: &[u8], overrides: &DialectOverrides) -> Result<Sniffed, EngineError> {
    sniff_with_size(first_bytes, first_bytes.len() as u64, overrides)
}

/// Sniffs from the first bytes of a file of `file_size` bytes.
pub fn sniff_with_size(
    first_bytes: &[u8],
    file_size: u64,
    overrides: &DialectOverrides,
) -> Result<Sniffed, EngineError> {
    let whole = first_bytes.len() as u64 >= file_size;
    check_encoding(first_bytes)?;
    let bom = first_bytes.starts_with(UTF8_BOM);
    let bom_len = if bom { UTF8_BOM.len() } else { 0 };
    let body = &first_bytes[bom_len..];
    let quote = overrides.quote.unwrap_or(b'"');
    let delimiter = match overrides.delimiter {
        Some(d) => d,
        None => guess_delimiter(body, quote, whole),
    };
    let mut dialect = Dialect {
        delimiter,
        quote,
        has_header: true,
        line_ending: LineEnding::Lf,
        bom,
    };
    dialect.validate()?;

    // The first record (blank lines before it are skipped, as everywhere).
    let cfg = ParserConfig {
        delimiter,
        quote,
        ..ParserConfig::default()
    };
    let mut p = Parser::from_start(cfg);
    let mut rec = RecordBuf::default();
    let (out, _) = p.parse(body, &mut rec);
    let first = match out {
        Outcome::Record => Some(rec.clone()),
        _ if !whole => {
            return Err(EngineError::HeaderTooLong {
                limit: first_bytes.len(),
            })
        }
        _ => match p.finish(&mut rec) {
            Ok(Outcome::Record) => Some(rec.clone()),
            Ok(_) => None,
            Err(EngineError::UnbalancedQuote { offset }) => {
                return Err(EngineError::UnbalancedQuote {
                    offset: offset + bom_len as u64,
                })
            }
            Err(e) => return Err(e),
        },
    };
    let Some(first) = first else {
        // Empty (or blank-lines-only) file: no columns, no data.
        dialect.has_header = overrides.has_header.unwrap_or(false);
        // Blank lines, if any, are data-region blank lines (counted by the chunks).
        return Ok(Sniffed {
            dialect,
            columns: Vec::new(),
            header_len: bom_len as u64,
            header_lines: 0,
        });
    };
    let end = first.content_end as usize;
    dialect.line_ending = match (body.get(end), body.get(end + 1)) {
        (Some(b'\r'), Some(b'\n')) => LineEnding::Crlf,
        (Some(b'\r'), _) => LineEnding::Cr,
        _ => LineEnding::Lf,
    };
    let fields: Vec<&[u8]> = field_slices(&first);
    if fields.len() > MAX_COLUMNS {
        return Err(EngineError::TooManyColumns {
            columns: fields.len(),
            limit: MAX_COLUMNS,
        });
    }
    dialect.has_header = match overrides.has_header {
        Some(h) => h,
        None => looks_like_header(&first, &fields),
    };
    if !dialect.has_header {
        return Ok(Sniffed {
            dialect,
            columns: (1..=fields.len()).map(|i| format!("col_{i}")).collect(),
            header_len: bom_len as u64,
            header_lines: 0,
        });
    }
    let names = header_names(&first, &fields)?;
    let mut header_end = end;
    match body.get(end) {
        Some(b'\r') if body.get(end + 1) == Some(&b'\n') => header_end += 2,
        Some(b'\r') | Some(b'\n') => header_end += 1,
        _ => {}
    }
    let header_len = bom_len + header_end;
    Ok(Sniffed {
        dialect,
        columns: unique_names(&names),
        header_len: header_len as u64,
        header_lines: count_line_breaks(&first_bytes[..header_len], false),
    })
}

/// The header's names as text: a header with a stray quote, a name over the field size limit,
/// a NUL or invalid UTF-8 is `invalid_header`.
fn header_names(first: &RecordBuf, fields: &[&[u8]]) -> Result<Vec<String>, EngineError> {
    if first.stray_quote {
        return Err(EngineError::InvalidHeader {
            detail: "the header has a quote inside an unquoted name or text after a closing quote"
                .into(),
        });
    }
    if first.too_large {
        return Err(EngineError::InvalidHeader {
            detail: "a header name is longer than the field size limit".into(),
        });
    }
    if first.text.contains(&0) {
        return Err(EngineError::InvalidHeader {
            detail: "the header contains a NUL byte".into(),
        });
    }
    let mut names = Vec::with_capacity(fields.len());
    for f in fields {
        match std::str::from_utf8(f) {
            Ok(s) => names.push(s.to_string()),
            Err(_) => {
                return Err(EngineError::InvalidHeader {
                    detail: "the header is not valid UTF-8".into(),
                })
            }
        }
    }
    Ok(names)
}

fn field_slices(rec: &RecordBuf) -> Vec<&[u8]> {
    let mut start = 0;
    rec.ends
        .iter()
        .map(|&e| {
            let s = &rec.text[start..e];
            start = e;
            s
        })
        .collect()
}

/// Refuses UTF-16/UTF-32: a UTF-16 BOM, or NUL bytes making up a quarter of the sample
/// (ASCII text in UTF-16 is half NULs; a stray NUL in UTF-8 data only rejects its record).
fn check_encoding(bytes: &[u8]) -> Result<(), EngineError> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(EngineError::UnsupportedEncoding {
            detail: "the file starts with a UTF-16 byte order mark".into(),
        });
    }
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    let nuls = memchr::memchr_iter(0, sample).count();
    if sample.len() >= 16 && nuls * 4 >= sample.len() {
        return Err(EngineError::UnsupportedEncoding {
            detail: format!(
                "{nuls} of the first {} bytes are NUL, which looks like UTF-16 or UTF-32",
                sample.len()
            ),
        });
    }
    Ok(())
}

/// Picks the candidate delimiter whose field count is most consistent over the first records
/// (and, on ties, the larger count, then the earlier candidate). `,` when nothing splits.
fn guess_delimiter(body: &[u8], quote: u8, whole: bool) -> u8 {
    let mut best = (b',', 0usize, 0usize);
    for &d in &CANDIDATE_DELIMITERS {
        if d == quote {
            continue;
        }
        let cfg = ParserConfig {
            delimiter: d,
            quote,
            ..ParserConfig::default()
        };
        let mut counts: Vec<usize> = Vec::new();
        let mut p = Parser::from_start(cfg);
        let mut rec = RecordBuf::default();
        let mut off = 0;
        while counts.len() < SNIFF_RECORDS {
            let (out, used) = p.parse(&body[off..], &mut rec);
            off += used;
            match out {
                Outcome::Record => counts.push(rec.ends.len()),
                _ => {
                    if whole && matches!(p.finish(&mut rec), Ok(Outcome::Record)) {
                        counts.push(rec.ends.len());
                    }
                    break;
                }
            }
        }
        let Some(&first) = counts.first() else {
            continue;
        };
        if first <= 1 {
            continue;
        }
        let consistent = counts.iter().filter(|&&c| c == first).count();
        if (consistent, first) > (best.1, best.2) {
            best = (d, consistent, first);
        }
    }
    best.0
}

/// A header has at least one non-empty name and no name that looks like a number.
fn looks_like_header(first: &RecordBuf, fields: &[&[u8]]) -> bool {
    if first.stray_quote || first.too_large {
        return false;
    }
    let names: Vec<&str> = fields
        .iter()
        .map(|f| std::str::from_utf8(f).unwrap_or("").trim())
        .collect();
    names.iter().any(|s| !s.is_empty()) && names.iter().all(|s| s.parse::<f64>().is_err())
}

/// Makes names non-empty and unique: empty -> `col_<position>`, repeats -> `<name>_2`, `_3`...
/// Linear in the number of names (see `names`).
pub fn unique_names(names: &[String]) -> Vec<String> {
    let mut taken = UniqueNames::with_capacity(names.len());
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let base = if n.trim().is_empty() {
                format!("col_{}", i + 1)
            } else {
                n.clone()
            };
            taken.claim(base)
        })
        .collect()
}
