//! The push-based, resumable CSV state machine (csv-core style): the caller owns the input
//! slices and the record buffer ([`RecordBuf`]); the parser owns only a few words of state, so
//! it can be fed any split of the bytes, down to one byte at a time, with identical results.
//!
//! Semantics are chosen so that **"inside quotes" at byte offset p is exactly the parity of the
//! quote bytes in [0, p)**: every quote byte toggles the state, wherever it is. This is RFC 4180
//! (with `""` as an escaped quote) for well-formed input; for malformed input it means a quote
//! inside an unquoted field (`ab"c`) or text after a closing quote (`"ab"c`) marks the record as
//! a stray-quote record (rejected by the chunk) but still toggles the state. That property is
//! what makes byte-range splitting exact (see `split` and docs/engine.md).
//!
//! Record terminators are LF, CRLF or a lone CR outside quotes. An empty line is not a record;
//! it is counted in [`Parser::blank_lines`]. The parser also counts quote bytes and physical line
//! breaks (LF, CRLF and lone CR, inside quotes too) so a chunk can report them for its range.
//!
//! Not here: validation of UTF-8, NULs, field counts (the chunk does that on the finished
//! record), dialect sniffing, or any I/O.

use memchr::{memchr, memchr2_iter, memchr3};

use crate::error::EngineError;

mod buf;
mod fast;
mod index;

pub use index::Kernel;

const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// Limits and dialect bytes for one parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserConfig {
    /// Field separator.
    pub delimiter: u8,
    /// Quote character.
    pub quote: u8,
    /// A field longer than this is not buffered; the record is flagged `too_large`.
    pub max_field_bytes: usize,
    /// A record whose unescaped text (or field count) exceeds this is flagged `too_large`.
    pub max_record_bytes: usize,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            delimiter: b',',
            quote: b'"',
            max_field_bytes: 1 << 20,
            max_record_bytes: 16 << 20,
        }
    }
}

/// Where the parser is. `LineStart`/`AfterCr` are record boundaries; `Skip*` are used by a chunk
/// before the first record it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// At the first byte of a line, outside quotes.
    LineStart,
    /// Just after a CR terminator outside quotes; an LF here is part of it (CRLF).
    AfterCr,
    /// Looking for the first record boundary, outside quotes.
    SkipOut,
    /// Looking for the first record boundary, inside quotes.
    SkipIn,
    /// In a record, at the first byte of a field.
    FieldStart,
    /// In an unquoted field (or after a stray quote closed again).
    Unquoted,
    /// Inside quotes.
    InQuoted,
    /// Just after a quote that left the quoted state: `"` (escape), delimiter or terminator next.
    QuoteSeen,
}

/// What a call to [`Parser::parse`] stopped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All input was consumed; feed more (or call [`Parser::finish`] at end of input).
    NeedInput,
    /// A record is complete in the [`RecordBuf`].
    Record,
    /// The parser is at a record boundary at or past its `stop_at` offset; nothing more is owned.
    Stop,
}

/// The caller-owned buffer a record is parsed into: unescaped field text end to end, field ends,
/// and what the chunk needs to judge and locate the record.
#[derive(Debug, Default, Clone)]
pub struct RecordBuf {
    /// Unescaped field bytes laid end to end (not yet validated as UTF-8).
    pub text: Vec<u8>,
    /// `ends[i]` is the end of field `i` in `text`.
    pub ends: Vec<usize>,
    /// Byte offset of the record's first byte.
    pub start: u64,
    /// Byte offset just past the record's content (where its terminator, or EOF, is).
    pub content_end: u64,
    /// The parser's line-break count at the record's first byte.
    pub start_line: u64,
    /// A quote appeared inside an unquoted field, or text followed a closing quote.
    pub stray_quote: bool,
    /// A field or the record exceeded the limits; `text` is incomplete.
    pub too_large: bool,
    /// At least one field was quoted (the record's raw bytes differ from its fields).
    pub any_quoted: bool,
    limit: usize,
    max_field: usize,
    max_record: usize,
}

/// The resumable state machine. See the module docs for the exact semantics.
#[derive(Debug, Clone)]
pub struct Parser {
    cfg: ParserConfig,
    state: State,
    pos: u64,
    stop_at: u64,
    quotes: u64,
    lines: u64,
    blank_lines: u64,
    quoted_cr: bool,
    quote_open_at: u64,
    /// Bytes that end an unquoted run: delimiter, quote, CR, LF.
    special: [bool; 256],
    /// The same four bytes broadcast to every byte of a word.
    splat: [u64; 4],
    /// The structural-index kernel of the fast path (`Scalar`: none).
    kernel: Kernel,
}

impl Parser {
    /// A parser whose next byte is at offset `pos`, starting in `state`. It stops (returns
    /// [`Outcome::Stop`]) at the first record boundary at or after `stop_at`.
    pub fn new(cfg: ParserConfig, state: State, pos: u64, stop_at: u64) -> Self {
        Parser {
            cfg,
            state,
            pos,
            stop_at,
            quotes: 0,
            lines: 0,
            blank_lines: 0,
            quoted_cr: false,
            quote_open_at: pos,
            special: {
                let mut t = [false; 256];
                for b in [cfg.delimiter, cfg.quote, CR, LF] {
                    t[b as usize] = true;
                }
                t
            },
            splat: [cfg.delimiter, cfg.quote, CR, LF].map(|b| u64::from(b) * 0x0101_0101_0101_0101),
            kernel: if Self::indexable(&cfg) {
                Kernel::detect()
            } else {
                Kernel::Scalar
            },
        }
    }

    /// The fast path assumes four distinct special bytes (delimiter, quote, CR, LF).
    fn indexable(cfg: &ParserConfig) -> bool {
        let [d, q] = [cfg.delimiter, cfg.quote];
        d != q && ![d, q].iter().any(|&b| b == CR || b == LF)
    }

    /// The same parser with another structural-index kernel (`Scalar` turns the fast path
    /// off). For tests and benchmarks; [`new`](Self::new) picks the fastest one available.
    ///
    /// # Panics
    /// If the CPU cannot run `kernel` (see [`Kernel::available`]).
    pub fn with_kernel(mut self, kernel: Kernel) -> Self {
        assert!(kernel.available(), "kernel {kernel:?} not supported here");
        if Self::indexable(&self.cfg) {
            self.kernel = kernel;
        }
        self
    }

    /// The structural-index kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// A parser for a whole input from its first byte (no stop).
    pub fn from_start(cfg: ParserConfig) -> Self {
        Parser::new(cfg, State::LineStart, 0, u64::MAX)
    }

    /// Tells the parser that the byte before its start was a CR (inside quotes), so an LF at
    /// the start is not a new line break. Only meaningful with `State::SkipIn`.
    pub fn set_prev_cr_in_quotes(&mut self, prev_cr: bool) {
        self.quoted_cr = prev_cr;
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// Offset of the next byte to consume.
    pub fn pos(&self) -> u64 {
        self.pos
    }
    /// Quote bytes consumed so far.
    pub fn quotes(&self) -> u64 {
        self.quotes
    }
    /// Physical line breaks consumed so far (LF, CRLF, lone CR; inside quotes too).
    pub fn lines(&self) -> u64 {
        self.lines
    }
    /// Empty lines (outside quotes) passed so far.
    pub fn blank_lines(&self) -> u64 {
        self.blank_lines
    }
    /// True when the parser is inside quotes.
    pub fn in_quotes(&self) -> bool {
        matches!(self.state, State::InQuoted | State::SkipIn)
    }
    /// True while a record is being parsed (started, not finished).
    pub fn in_record(&self) -> bool {
        matches!(
            self.state,
            State::FieldStart | State::Unquoted | State::InQuoted | State::QuoteSeen
        )
    }

    /// Index of the first delimiter, quote, CR or LF in `hay` (or its length), with the bytes
    /// before it appended to the record's text (what [`RecordBuf::push`] would do with them).
    ///
    /// Word-at-a-time (SWAR, portable to the arm64 Lambdas): fields are short, so this beats a
    /// memchr call per field; the lowest flagged byte of `has_zero` is exact. Each word is also
    /// stored, whole, just past the text's length (in spare capacity), and the length moves over
    /// the field's bytes at the end: the scan's loads are the copy (no `memcpy` call per field).
    /// Stores stop at the record's limit, so a field too large to buffer does not grow the
    /// buffer past `limit + 8` bytes.
    #[inline]
    fn scan_unquoted(&self, hay: &[u8], rec: &mut RecordBuf) -> usize {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        #[inline(always)]
        fn has_zero(v: u64) -> u64 {
            v.wrapping_sub(LO) & !v & HI
        }
        let [bd, bq, bcr, blf] = self.splat;
        let len0 = rec.text.len();
        // Bytes the text may still take before the record is too large (0 once it is).
        let room = rec.limit.saturating_sub(len0);
        rec.text.reserve(hay.len().min(room) + 8);
        // SAFETY: `reserve` made `len0 + min(hay.len(), room) + 8` bytes of capacity; words are
        // stored only at `i < room` with `i + 8 <= hay.len()`, and single bytes at
        // `i < min(hay.len(), room)`, so every store is inside the capacity.
        let dst = unsafe { rec.text.as_mut_ptr().add(len0) };
        let mut i = 0;
        let k = 'found: {
            while i + 8 <= hay.len() {
                let w = u64::from_le_bytes(hay[i..i + 8].try_into().expect("8 bytes"));
                if i < room {
                    // SAFETY: see above (`i < room` and `i + 8 <= hay.len()`).
                    unsafe { dst.add(i).cast::<u64>().write_unaligned(w) };
                }
                let m = has_zero(w ^ bd) | has_zero(w ^ bq) | has_zero(w ^ bcr) | has_zero(w ^ blf);
                if m != 0 {
                    break 'found i + (m.trailing_zeros() / 8) as usize;
                }
                i += 8;
            }
            while i < hay.len() && !self.special[hay[i] as usize] {
                if i < room {
                    // SAFETY: see above (`i < min(hay.len(), room)`).
                    unsafe { dst.add(i).write(hay[i]) };
                }
                i += 1;
            }
            i
        };
        if k > room {
            // As `push`: bounded memory, stop buffering; the record will be rejected.
            rec.too_large = true;
            rec.limit = 0;
        } else {
            // SAFETY: the `k <= room` bytes before the special byte were stored above (whole
            // words up to the one holding it, then single bytes), and `len0 + k` is within the
            // capacity reserved.
            unsafe { rec.text.set_len(len0 + k) };
        }
        k
    }

    #[inline]
    fn count_breaks(&mut self, run: &[u8]) {
        if run.is_empty() {
            return;
        }
        for i in memchr2_iter(CR, LF, run) {
            if run[i] == CR {
                self.lines += 1;
            } else {
                let after_cr = if i == 0 {
                    self.quoted_cr
                } else {
                    run[i - 1] == CR
                };
                if !after_cr {
                    self.lines += 1;
                }
            }
        }
        self.quoted_cr = run[run.len() - 1] == CR;
    }

    /// Consumes `input` until a record completes, a stop boundary is reached, or the input
    /// runs out. Returns what happened and how many bytes were consumed.
    pub fn parse(&mut self, input: &[u8], rec: &mut RecordBuf) -> (Outcome, usize) {
        let d = self.cfg.delimiter;
        let q = self.cfg.quote;
        let n = input.len();
        let mut i = 0usize;
        // The fast path is not tried again at the field it handed back.
        let mut fast_from = if self.kernel == Kernel::Scalar {
            usize::MAX
        } else {
            0
        };
        macro_rules! end_record {
            ($b:expr) => {{
                rec.end_field();
                rec.content_end = self.pos + i as u64;
                self.lines += 1;
                self.state = if $b == CR {
                    State::AfterCr
                } else {
                    State::LineStart
                };
                i += 1;
                self.pos += i as u64;
                return (Outcome::Record, i);
            }};
        }

        while i < n {
            match self.state {
                State::LineStart | State::AfterCr => {
                    if self.pos + i as u64 >= self.stop_at {
                        self.pos += i as u64;
                        return (Outcome::Stop, i);
                    }
                    let b = input[i];
                    if self.state == State::AfterCr {
                        self.state = State::LineStart;
                        if b == LF {
                            i += 1;
                            continue;
                        }
                    }
                    if b == LF {
                        self.blank_lines += 1;
                        self.lines += 1;
                        i += 1;
                    } else if b == CR {
                        self.blank_lines += 1;
                        self.lines += 1;
                        self.state = State::AfterCr;
                        i += 1;
                    } else {
                        rec.begin(self.pos + i as u64, self.lines, &self.cfg);
                        self.state = State::FieldStart;
                    }
                }
                State::FieldStart => {
                    if i >= fast_from && n - i >= 64 {
                        match fast::fields(self, input, i, rec) {
                            fast::Fast::Record(j) => {
                                self.pos += j as u64;
                                return (Outcome::Record, j);
                            }
                            fast::Fast::Bail(j) => {
                                i = j;
                                fast_from = j + 1;
                                continue;
                            }
                        }
                    }
                    let b = input[i];
                    if b == q {
                        self.quotes += 1;
                        self.quote_open_at = self.pos + i as u64;
                        rec.any_quoted = true;
                        self.quoted_cr = false;
                        self.state = State::InQuoted;
                        i += 1;
                    } else if b == d {
                        rec.end_field();
                        i += 1;
                    } else if b == LF || b == CR {
                        end_record!(b);
                    } else {
                        self.state = State::Unquoted;
                    }
                }
                State::Unquoted => {
                    i += self.scan_unquoted(&input[i..], rec);
                    if i == n {
                        continue;
                    }
                    let b = input[i];
                    if b == d {
                        rec.end_field();
                        i += 1;
                        // Hot path: the next field is unquoted and non-empty; stay here rather
                        // than going through FieldStart (one dispatch per field, not three).
                        if i >= n || self.special[input[i] as usize] {
                            self.state = State::FieldStart;
                        }
                    } else if b == q {
                        rec.stray_quote = true;
                        self.quotes += 1;
                        self.quote_open_at = self.pos + i as u64;
                        self.quoted_cr = false;
                        self.state = State::InQuoted;
                        i += 1;
                    } else {
                        end_record!(b);
                    }
                }
                State::InQuoted => match memchr(q, &input[i..]) {
                    Some(k) => {
                        self.count_breaks(&input[i..i + k]);
                        rec.push(&input[i..i + k]);
                        i += k + 1;
                        self.quotes += 1;
                        self.state = State::QuoteSeen;
                    }
                    None => {
                        self.count_breaks(&input[i..]);
                        rec.push(&input[i..]);
                        i = n;
                    }
                },
                State::QuoteSeen => {
                    let b = input[i];
                    if b == q {
                        rec.push(&[q]);
                        self.quotes += 1;
                        self.quoted_cr = false;
                        self.state = State::InQuoted;
                        i += 1;
                    } else if b == d {
                        rec.end_field();
                        self.state = State::FieldStart;
                        i += 1;
                    } else if b == LF || b == CR {
                        end_record!(b);
                    } else {
                        rec.stray_quote = true;
                        self.state = State::Unquoted;
                    }
                }
                State::SkipOut => match memchr3(q, CR, LF, &input[i..]) {
                    Some(k) => {
                        let b = input[i + k];
                        i += k + 1;
                        if b == q {
                            self.quotes += 1;
                            self.quoted_cr = false;
                            self.state = State::SkipIn;
                        } else {
                            self.lines += 1;
                            self.state = if b == CR {
                                State::AfterCr
                            } else {
                                State::LineStart
                            };
                        }
                    }
                    None => i = n,
                },
                State::SkipIn => match memchr(q, &input[i..]) {
                    Some(k) => {
                        self.count_breaks(&input[i..i + k]);
                        i += k + 1;
                        self.quotes += 1;
                        self.state = State::SkipOut;
                    }
                    None => {
                        self.count_breaks(&input[i..]);
                        i = n;
                    }
                },
            }
        }
        self.pos += n as u64;
        (Outcome::NeedInput, n)
    }

    /// Ends the input. Returns `Record` if a record was in progress (it is now complete in
    /// `rec`), `Stop` otherwise. A record still inside quotes is an `unbalanced_quote` error
    /// carrying the offset of the quote that opened the field.
    pub fn finish(&mut self, rec: &mut RecordBuf) -> Result<Outcome, EngineError> {
        match self.state {
            State::InQuoted => Err(EngineError::UnbalancedQuote {
                offset: self.quote_open_at,
            }),
            State::FieldStart | State::Unquoted | State::QuoteSeen => {
                rec.end_field();
                rec.content_end = self.pos;
                self.state = State::LineStart;
                Ok(Outcome::Record)
            }
            _ => Ok(Outcome::Stop),
        }
    }

    /// Offset of the quote that opened the current quoted field.
    pub fn quote_open_at(&self) -> u64 {
        self.quote_open_at
    }
}

/// Counts physical line breaks (LF, CRLF as one, lone CR) in `bytes`, given whether the byte
/// before them was a CR. Used for the header and by tests.
pub fn count_line_breaks(bytes: &[u8], prev_cr: bool) -> u64 {
    let mut n = 0;
    for i in memchr2_iter(CR, LF, bytes) {
        if bytes[i] == CR {
            n += 1;
        } else {
            let after_cr = if i == 0 { prev_cr } else { bytes[i - 1] == CR };
            if !after_cr {
                n += 1;
            }
        }
    }
    n
}

/// Parses a whole in-memory input sequentially and calls `f` for every record. Convenience for
/// the sniffer, the part rebaser and tests; the chunk path uses [`Parser`] directly.
pub fn for_each_record(
    cfg: ParserConfig,
    input: &[u8],
    mut f: impl FnMut(&RecordBuf),
) -> Result<(), EngineError> {
    let mut p = Parser::from_start(cfg);
    let mut rec = RecordBuf::default();
    let mut off = 0;
    loop {
        let (out, used) = p.parse(&input[off..], &mut rec);
        off += used;
        match out {
            Outcome::Record => f(&rec),
            Outcome::NeedInput => break,
            Outcome::Stop => return Ok(()),
        }
    }
    if p.finish(&mut rec)? == Outcome::Record {
        f(&rec);
    }
    Ok(())
}
