//! How the parse of one byte range begins and ends, shared by the chunk worker
//! ([`crate::chunk::ChunkProcessor`]) and the read-only range reader
//! ([`crate::range::RangeReader`]), so that both own exactly the same records:
//! - [`read_start`]: the first byte a range must be given (one before `start`);
//! - `RangeStart`: the byte before `start` and, when the start state is not known, the guess
//!   window, from which the parser's first state is decided;
//! - `RangeStart::end`: the end of input: the last record, and a quote still open at end of
//!   file (an error when the start state was known, reported when it was guessed).
//!
//! Not here: what is done with the records (see `chunk` and `range`), planning the ranges and
//! validating the guesses (see `split`).

use crate::error::EngineError;
use crate::parse::{Outcome, Parser, ParserConfig, RecordBuf, State};
use crate::split::{guess_start_in_quotes, ChunkTask, GUESS_WINDOW};

/// Whether the caller should keep feeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Feed more bytes (or call `finish` at end of input).
    NeedMore,
    /// The last owned record is finished; stop reading and call `finish`.
    Done,
}

/// The first byte a range must be given: one before `start` (except for chunk 0, which starts at
/// the first data byte by construction).
pub fn read_start(task: &ChunkTask) -> u64 {
    if task.index == 0 || task.start == 0 {
        task.start
    } else {
        task.start - 1
    }
}

/// How a byte range's parse begins and ends, shared by [`crate::range::RangeReader`] and
/// [`crate::chunk::ChunkProcessor`]: the byte before `start` (it decides the parser's first
/// state), the guess window when the start state is not known, and the parser made from them.
pub(crate) struct RangeStart {
    task: ChunkTask,
    cfg: ParserConfig,
    need_prev: bool,
    prev: Option<u8>,
    guess_buf: Vec<u8>,
    /// The start state the parser began in (the known one, or the guess).
    pub(crate) assumed: bool,
}

/// What [`RangeStart::begin`] decided.
pub(crate) enum Begin<'a> {
    /// The parser cannot start yet: feed more bytes.
    NeedMore,
    /// The parser, the guess window it was decided from (to be run first; `None`: the start
    /// state was known and nothing was held back), and the rest of the bytes.
    Start(Box<Parser>, Option<Vec<u8>>, &'a [u8]),
}

/// What [`RangeStart::end`] found at end of input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct End {
    /// A last record without terminator was completed (it is in the record buffer).
    pub(crate) last_record: bool,
    /// On a guessed start state: the offset of a quote still open at end of file.
    pub(crate) open_quote_at_eof: Option<u64>,
}

impl RangeStart {
    pub(crate) fn new(task: &ChunkTask, cfg: ParserConfig) -> Self {
        RangeStart {
            task: *task,
            cfg,
            need_prev: read_start(task) < task.start,
            prev: None,
            guess_buf: Vec::new(),
            assumed: false,
        }
    }

    /// Takes the leading bytes of the input (from [`read_start`]) until the
    /// parser can start: the byte before `start`, then, when the start state is not known, the
    /// guess window.
    pub(crate) fn begin<'a>(&mut self, mut bytes: &'a [u8]) -> Begin<'a> {
        if self.need_prev {
            let Some((&b, rest)) = bytes.split_first() else {
                return Begin::NeedMore;
            };
            self.prev = Some(b);
            self.need_prev = false;
            bytes = rest;
        }
        match self.task.start_in_quotes {
            Some(k) => Begin::Start(Box::new(self.parser(k)), None, bytes),
            None => {
                let take = (GUESS_WINDOW - self.guess_buf.len()).min(bytes.len());
                self.guess_buf.extend_from_slice(&bytes[..take]);
                if self.guess_buf.len() < GUESS_WINDOW {
                    return Begin::NeedMore;
                }
                let (parser, window) = self.guess();
                Begin::Start(Box::new(parser), Some(window), &bytes[take..])
            }
        }
    }

    /// The parser when the input ended before [`begin`](Self::begin) started it, and the
    /// bytes held back for the guess (to be run first), if any.
    pub(crate) fn begin_at_eof(&mut self) -> (Parser, Option<Vec<u8>>) {
        match self.task.start_in_quotes {
            Some(k) => (self.parser(k), None),
            None => {
                let (parser, window) = self.guess();
                (parser, Some(window))
            }
        }
    }

    /// Ends the parse at end of input: the last record, if one was pending (it is in `rec`),
    /// and a quote still open at end of file. That is an error when the start state was known
    /// (the file really ends inside quotes), and only reported when it was guessed (the guess
    /// may be wrong: `split::validate` decides, and the range is read again if so).
    pub(crate) fn end(&self, parser: &mut Parser, rec: &mut RecordBuf) -> Result<End, EngineError> {
        match parser.finish(rec) {
            Ok(Outcome::Record) => Ok(End {
                last_record: true,
                open_quote_at_eof: None,
            }),
            Ok(_) => Ok(End::default()),
            Err(EngineError::UnbalancedQuote { offset }) if self.task.start_in_quotes.is_none() => {
                Ok(End {
                    last_record: false,
                    open_quote_at_eof: Some(offset),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn guess(&mut self) -> (Parser, Vec<u8>) {
        let g = guess_start_in_quotes(
            self.prev,
            &self.guess_buf,
            self.cfg.delimiter,
            self.cfg.quote,
        );
        (self.parser(g), std::mem::take(&mut self.guess_buf))
    }

    /// The parser for the range, starting in quotes or not: from the start of a line for the
    /// first range (or one with no byte before it), else skipping to the first record that
    /// starts in the range, in the state the byte before `start` leaves it.
    fn parser(&mut self, in_quotes: bool) -> Parser {
        self.assumed = in_quotes;
        let state = if self.task.index == 0 || self.prev.is_none() {
            State::LineStart
        } else if in_quotes {
            State::SkipIn
        } else {
            match self.prev {
                Some(b'\n') => State::LineStart,
                Some(b'\r') => State::AfterCr,
                _ => State::SkipOut,
            }
        };
        let mut p = Parser::new(self.cfg, state, self.task.start, self.task.end);
        if state == State::SkipIn && self.prev == Some(b'\r') {
            p.set_prev_cr_in_quotes(true);
        }
        p
    }
}
