//! One chunk's work: parse the records whose first byte lies in `[start, end)`, judge each one
//! (clean or rejected, and why), feed the profile, and write the clean and rejected parts.
//!
//! The caller owns the bytes: it reads from [`read_start`] (one byte before `start`, so the chunk
//! can tell whether `start` begins a record) and pushes slices of any size into
//! [`ChunkProcessor::feed`] until it answers [`Feed::Done`] or the input ends, then calls
//! [`ChunkProcessor::finish`]. Memory is one record plus fixed buffers (the 64 KiB guess window,
//! output batches), whatever the chunk size.
//!
//! Output formats (both UTF-8 CSV, LF line endings, `,` delimiter, no header — the stitcher adds it):
//! - clean: the record's fields, quoted only when they contain `,` `"` CR or LF (and a record
//!   made of one empty field is written `""` so it does not read back as a blank line);
//! - rejected: `source_byte_offset,source_line,reason,raw,detail` ([`REJECTED_HEADER`]) where
//!   `source_line` is *chunk-local* (line breaks between the chunk's start and the record) until
//!   [`rebase_rejected`] adds the chunk's line base; `raw` is the record's bytes without
//!   terminator, decoded lossily, cut to `max_field_bytes` for `field_too_large`; `reason` is a
//!   parse reason code or `rule:<id>`; `detail` says what the rule found (empty for parse reasons).
//!
//! With rules (`ChunkOptions.rules`), every well-formed record is profiled as it is in the source,
//! then checked: a rejecting violation sends it to the rejected output, otherwise its transformed
//! row goes to the clean output (see `rules`).
//!
//! Not here: reading files or S3 (see `file` and the chunk Lambda), merging (see `split`), where a
//! range's parse starts and how it ends (see `byte_range`, shared with `range`), the CSV writer
//! (`csv_write`), rebasing rejected parts (`rejected`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use memchr::memchr;
use serde::{Deserialize, Serialize};

use crate::byte_range::{Begin, RangeStart};
use crate::dialect::Dialect;
use crate::error::EngineError;
use crate::parse::{Outcome, Parser, ParserConfig, RecordBuf};
use crate::profile::{ProfileOptions, ProfileState};
use crate::record::{Record, RejectReason};
use crate::rules::{CompiledRules, RuleRunner, UniqueKeys, Verdict};
use crate::split::{ChunkSummary, ChunkTask};

// Re-exported where callers have always found them; they live in lower modules that `range`
// and `rules` use too.
pub use crate::byte_range::{read_start, Feed};
pub use crate::csv_write::{write_field, write_fields};
pub use crate::rejected::{rebase_rejected, RejectedRebaser, REJECTED_HEADER};

/// Output batches are handed to the writers once they pass this size (and at the end of a feed).
const OUT_BATCH: usize = 64 * 1024;

/// Per-chunk knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkOptions {
    /// Longest field that is buffered; longer ones reject the record as `field_too_large`.
    pub max_field_bytes: usize,
    /// Longest record (unescaped text; raw bytes may be up to 3x) before `field_too_large`.
    pub max_record_bytes: usize,
    /// Write clean and rejected rows (false for profile-only runs).
    pub emit_rows: bool,
    /// A chunk running on a *guessed* start state gives up once it has read this many bytes past
    /// `end` without finishing its last record (a wrong guess can otherwise read to the end of
    /// the file); it is then re-run with the known state. 64 MiB: beyond the largest record.
    #[serde(default = "default_overrun")]
    pub max_speculative_overrun_bytes: u64,
    /// Options of the column profile.
    pub profile: ProfileOptions,
    /// Compiled data rules (checks, transforms, masks); `None`: every well-formed record is
    /// clean and written as it is. Not serialised: each worker compiles the rule document.
    #[serde(skip)]
    pub rules: Option<Arc<CompiledRules>>,
    /// For a re-run after the `unique` second pass: the records known to repeat an earlier
    /// value, per rule id (`rules::unique::Repeats`). `None`: emit keys for the second pass.
    #[serde(skip)]
    pub unique_repeats: Option<Arc<crate::rules::unique::Repeats>>,
    /// The caller grades the rows of `model` sentiment steps: clean rows wait in the processor
    /// until [`ChunkProcessor::fill_model_rows`] gives their grades (see
    /// [`ChunkProcessor::model_rows`]). `false`: those steps write `not_graded`.
    #[serde(skip)]
    pub grade_model_rows: bool,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_field_bytes: 1 << 20,
            max_record_bytes: 16 << 20,
            emit_rows: true,
            max_speculative_overrun_bytes: default_overrun(),
            profile: ProfileOptions::default(),
            rules: None,
            unique_repeats: None,
            grade_model_rows: false,
        }
    }
}

fn default_overrun() -> u64 {
    64 << 20
}

/// What one chunk produced (besides its output parts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkResult {
    /// Chunk index.
    pub index: u32,
    /// Range start.
    pub start: u64,
    /// Range end.
    pub end: u64,
    /// The quote state at `start` the chunk was processed with.
    pub assumed_start_in_quotes: bool,
    /// Whether that state was known (from the task) rather than guessed.
    pub start_state_known: bool,
    /// Quote bytes in `[start, end)`.
    pub quote_count_in_range: u64,
    /// Physical line breaks (LF, CRLF, lone CR) at positions in `[start, end)`.
    pub newline_count_in_range: u64,
    /// Clean records.
    pub rows: u64,
    /// Rejected records.
    pub rejected_rows: u64,
    /// Empty lines owned by this chunk.
    pub blank_lines: u64,
    /// `end - start`.
    pub bytes_in_range: u64,
    /// The last owned record was inside quotes at end of file (offset of its opening quote).
    pub open_quote_at_eof: Option<u64>,
    /// The chunk gave up reading past `end` on a guessed start state (its outputs are
    /// incomplete; `split::validate` always re-runs it).
    #[serde(default)]
    pub abandoned: bool,
    /// The chunk's column profile.
    pub profile: ProfileState,
    /// Violations per rule id (every rule, zeros included; empty without rules). Add them up
    /// across chunks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub violations: BTreeMap<String, u64>,
    /// Records rejected by rules (included in `rejected_rows`).
    #[serde(default)]
    pub rule_rejected_rows: u64,
    /// Texts scored by `derive` sentiment steps (clean rows with a non-empty text, summed over
    /// the steps; 0 without them): the job's "rows scored".
    #[serde(default)]
    pub scored_rows: u64,
    /// Rows of `model` steps marked `model_error` (their batch answered out of schema twice).
    #[serde(default)]
    pub model_error_rows: u64,
    /// Rows of `model` steps marked `not_graded` (the job's cost cap was reached).
    #[serde(default)]
    pub not_graded_rows: u64,
    /// Rows of `model` steps marked `not_sampled` (left out of `sample`).
    #[serde(default)]
    pub not_sampled_rows: u64,
    /// Keys of `unique` rules for the second pass (`rules::unique`). Not serialised: the caller
    /// takes them out and stores them as partitions (`rules::unique::encode`).
    #[serde(skip)]
    pub unique_keys: Vec<UniqueKeys>,
}

impl ChunkResult {
    /// What `split::validate` needs.
    pub fn summary(&self) -> ChunkSummary {
        ChunkSummary {
            index: self.index,
            assumed_start_in_quotes: self.assumed_start_in_quotes,
            quote_count_in_range: self.quote_count_in_range,
            open_quote_at_eof: self.open_quote_at_eof,
            abandoned: self.abandoned,
        }
    }
}

/// The push-based chunk worker. See the module docs.
pub struct ChunkProcessor {
    task: ChunkTask,
    dialect: Dialect,
    ncols: usize,
    cfg: ParserConfig,
    emit_rows: bool,
    parser: Option<Parser>,
    start: RangeStart,
    /// Offset of the next byte `run` will see.
    pos: u64,
    rec: RecordBuf,
    /// Raw bytes of a record that started in an earlier slice.
    raw: Vec<u8>,
    out: Vec<u8>,
    rej_out: Vec<u8>,
    at_end: Option<(u64, u64)>,
    /// Records within `[slice start, utf8_valid_until)` of the current slice are valid UTF-8.
    utf8_valid_until: u64,
    /// Records within `[slice start, nul_free_until)` of the current slice have no NUL byte.
    nul_free_until: u64,
    rows: u64,
    rejected_rows: u64,
    done: bool,
    abandoned: bool,
    max_overrun: u64,
    open_quote_at_eof: Option<u64>,
    profile: ProfileState,
    rules: Option<RuleRunner>,
    rule_rejected_rows: u64,
    /// The rules derive sentiment columns (profiled per clean row).
    derives: bool,
    scored_rows: u64,
    /// Model rows given a mark instead of a grade.
    marks: Marks,
}

/// Model rows per mark (`model_error`, `not_graded`, `not_sampled`).
#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    model_error: u64,
    not_graded: u64,
    not_sampled: u64,
}

/// A model row's grade into the profile's derived column and the counters.
fn observe_grade(
    profile: &mut ProfileState,
    marks: &mut Marks,
    scored_rows: &mut u64,
    row: &crate::grading::ModelRow,
    grade: &crate::grading::Grade,
) {
    use crate::grading::Grade;
    match *grade {
        Grade::Scored(score, label) => {
            *scored_rows += 1;
            profile.observe_sentiment_labelled(row.derive, Some((score, label)));
            return;
        }
        Grade::ModelError => marks.model_error += 1,
        Grade::NotGraded => marks.not_graded += 1,
        Grade::NotSampled => marks.not_sampled += 1,
    }
    profile.observe_sentiment_labelled(row.derive, None);
}

impl ChunkProcessor {
    /// A processor for `task`; `columns` are the file's column names (from the sniffer).
    pub fn new(
        task: &ChunkTask,
        dialect: &Dialect,
        columns: &[String],
        opts: &ChunkOptions,
    ) -> Self {
        let cfg = ParserConfig {
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            max_field_bytes: opts.max_field_bytes,
            max_record_bytes: opts.max_record_bytes,
        };
        let mut profile = ProfileState::new(columns.to_vec(), &opts.profile);
        let derived = opts
            .rules
            .as_ref()
            .map(|r| r.sentiment_columns())
            .unwrap_or_default();
        let derives = !derived.is_empty();
        for (k, column) in derived.into_iter().enumerate() {
            // Indices 0.. in output order: `observe_sentiment(k, ..)` below relies on it.
            let i = profile.add_sentiment(column);
            debug_assert_eq!(i, k);
        }
        ChunkProcessor {
            task: *task,
            dialect: *dialect,
            ncols: columns.len(),
            cfg,
            emit_rows: opts.emit_rows,
            parser: None,
            start: RangeStart::new(task, cfg),
            pos: task.start,
            rec: RecordBuf::default(),
            raw: Vec::new(),
            out: Vec::with_capacity(OUT_BATCH + 1024),
            rej_out: Vec::new(),
            at_end: None,
            utf8_valid_until: 0,
            nul_free_until: 0,
            rows: 0,
            rejected_rows: 0,
            done: false,
            abandoned: false,
            max_overrun: opts.max_speculative_overrun_bytes,
            open_quote_at_eof: None,
            profile,
            rules: opts.rules.clone().map(|r| {
                let mut runner = match &opts.unique_repeats {
                    Some(known) => RuleRunner::with_repeats(r, known),
                    None => RuleRunner::new(r),
                };
                if opts.grade_model_rows {
                    runner.collect_model_rows();
                }
                runner
            }),
            rule_rejected_rows: 0,
            derives,
            scored_rows: 0,
            marks: Marks::default(),
        }
    }

    /// Pushes the next bytes (starting at [`read_start`] for the first call).
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        clean: &mut impl Write,
        rejected: &mut impl Write,
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
                self.run(&buf)?;
            }
            bytes = rest;
        }
        if !self.done {
            self.run(bytes)?;
        }
        if !self.done
            && self.task.start_in_quotes.is_none()
            && self.pos > self.task.end.saturating_add(self.max_overrun)
        {
            // Most likely a wrong guess reading on to EOF; validation re-runs this chunk.
            self.abandoned = true;
            self.done = true;
        }
        self.flush(clean, rejected)?;
        Ok(if self.done {
            Feed::Done
        } else {
            Feed::NeedMore
        })
    }

    /// Ends the parse at end of input (the last record, if unterminated, is processed); what
    /// [`finish`](Self::finish) does first. Call it before `finish` to grade the last
    /// [`model_rows`](Self::model_rows). Idempotent.
    pub fn end_input(&mut self) -> Result<(), EngineError> {
        if self.parser.is_none() {
            let (parser, guessed_from) = self.start.begin_at_eof();
            self.parser = Some(parser);
            if let Some(buf) = guessed_from {
                self.run(&buf)?;
            }
        }
        if !self.done {
            let parser = self.parser.as_mut().expect("parser started above");
            let end = self.start.end(parser, &mut self.rec)?;
            if end.last_record {
                let base = self.pos;
                self.on_record(&[], base);
            }
            self.open_quote_at_eof = end.open_quote_at_eof;
            self.done = true;
        }
        Ok(())
    }

    /// The clean rows' texts waiting for a model grade (with
    /// [`ChunkOptions::grade_model_rows`]): their clean rows are held back, not written, until
    /// [`fill_model_rows`](Self::fill_model_rows). Grade them when there are enough for a few
    /// calls, after a feed, and before [`finish`](Self::finish) (after
    /// [`end_input`](Self::end_input)).
    pub fn model_rows(&self) -> &[crate::grading::ModelRow] {
        self.rules.as_ref().map_or(&[], |r| r.model_rows())
    }

    /// Writes the held-back clean rows with `grades` (one per [`model_rows`](Self::model_rows)
    /// entry, same order) to `clean`.
    pub fn fill_model_rows(
        &mut self,
        grades: &[crate::grading::Grade],
        clean: &mut impl Write,
    ) -> Result<(), EngineError> {
        if let Some(runner) = self.rules.as_mut() {
            for (row, g) in runner.model_rows().iter().zip(grades) {
                observe_grade(
                    &mut self.profile,
                    &mut self.marks,
                    &mut self.scored_rows,
                    row,
                    g,
                );
            }
            runner.fill_model_rows(grades, &mut self.out);
        }
        // The rejected rows stay for the next `feed` or `finish` to write.
        if !self.out.is_empty() {
            clean
                .write_all(&self.out)
                .map_err(|e| EngineError::io("writing the clean output", e))?;
            self.out.clear();
        }
        Ok(())
    }

    /// Ends the chunk (at end of input, or after `Feed::Done`) and returns its result. Rows
    /// still waiting for a model grade are written `not_graded`.
    pub fn finish(
        mut self,
        clean: &mut impl Write,
        rejected: &mut impl Write,
    ) -> Result<ChunkResult, EngineError> {
        self.end_input()?;
        if let Some(runner) = self.rules.as_mut() {
            let n = runner.model_rows().len();
            if n > 0 {
                let grades = vec![crate::grading::Grade::NotGraded; n];
                for (row, g) in runner.model_rows().iter().zip(&grades) {
                    observe_grade(
                        &mut self.profile,
                        &mut self.marks,
                        &mut self.scored_rows,
                        row,
                        g,
                    );
                }
                runner.fill_model_rows(&grades, &mut self.out);
            }
        }
        if self.at_end.is_none() {
            self.snapshot_end();
        }
        self.flush(clean, rejected)?;
        let parser = self.parser.as_ref().expect("parser started above");
        let (quotes, lines) = self.at_end.unwrap_or((0, 0));
        let bytes_in_range = self.task.end - self.task.start;
        self.profile.add_bytes(bytes_in_range);
        let outcome = self.rules.map(RuleRunner::finish).unwrap_or_default();
        Ok(ChunkResult {
            index: self.task.index,
            start: self.task.start,
            end: self.task.end,
            assumed_start_in_quotes: self.start.assumed,
            start_state_known: self.task.start_in_quotes.is_some(),
            quote_count_in_range: quotes,
            newline_count_in_range: lines,
            rows: self.rows,
            rejected_rows: self.rejected_rows,
            blank_lines: parser.blank_lines(),
            bytes_in_range,
            open_quote_at_eof: self.open_quote_at_eof,
            abandoned: self.abandoned,
            profile: self.profile,
            violations: outcome.violations,
            rule_rejected_rows: self.rule_rejected_rows,
            scored_rows: self.scored_rows,
            model_error_rows: self.marks.model_error,
            not_graded_rows: self.marks.not_graded,
            not_sampled_rows: self.marks.not_sampled,
            unique_keys: outcome.unique_keys,
        })
    }

    fn snapshot_end(&mut self) {
        let p = self.parser.as_ref().expect("parser started");
        self.at_end = Some((p.quotes(), p.lines()));
    }

    /// Runs bytes through the parser, splitting them at `end` to snapshot the range counters.
    fn run(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        if self.at_end.is_none() {
            let left = self.task.end.saturating_sub(self.pos);
            if (bytes.len() as u64) >= left {
                let (a, b) = bytes.split_at(left as usize);
                self.run_part(a);
                self.snapshot_end();
                if !self.done {
                    self.run_part(b);
                }
                return Ok(());
            }
        }
        self.run_part(bytes);
        Ok(())
    }

    fn run_part(&mut self, input: &[u8]) {
        let base = self.pos;
        // One UTF-8 validation per slice instead of one per record: records lying inside the
        // valid prefix need no check of their own.
        self.utf8_valid_until = base
            + match simdutf8::compat::from_utf8(input) {
                Ok(_) => input.len(),
                Err(e) => e.valid_up_to(),
            } as u64;
        self.nul_free_until = base + memchr(0, input).unwrap_or(input.len()) as u64;
        let mut off = 0;
        loop {
            let parser = self.parser.as_mut().expect("parser started");
            let (out, used) = parser.parse(&input[off..], &mut self.rec);
            off += used;
            match out {
                Outcome::NeedInput => break,
                Outcome::Stop => {
                    self.done = true;
                    break;
                }
                Outcome::Record => self.on_record(input, base),
            }
        }
        self.pos = base + input.len() as u64;
        if !self.done && self.parser.as_ref().is_some_and(|p| p.in_record()) {
            // Keep the raw bytes of a record that continues in the next slice (bounded).
            let from = self.rec.start.max(base) - base;
            self.stash_raw(&input[from as usize..]);
        }
    }

    fn stash_raw(&mut self, bytes: &[u8]) {
        let cap = if self.rec.too_large {
            self.cfg.max_field_bytes
        } else {
            3 * self.cfg.max_record_bytes
        };
        let room = cap.saturating_sub(self.raw.len());
        self.raw.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn on_record(&mut self, input: &[u8], base: u64) {
        let rec = &mut self.rec;
        if rec.content_end - rec.start > 3 * self.cfg.max_record_bytes as u64 {
            rec.too_large = true;
        }
        let raw: &[u8] = if rec.start >= base {
            &input[(rec.start - base) as usize..(rec.content_end - base) as usize]
        } else {
            let upto = (rec.content_end.saturating_sub(base)) as usize;
            let cap = 3 * self.cfg.max_record_bytes;
            let room = cap.saturating_sub(self.raw.len());
            self.raw
                .extend_from_slice(&input[..upto.min(room).min(input.len())]);
            &self.raw
        };
        let text = &rec.text;
        let raw_is_utf8 = rec.start >= base && rec.content_end <= self.utf8_valid_until;
        let verdict = if rec.too_large {
            Err(RejectReason::FieldTooLarge)
        } else if rec.stray_quote {
            Err(RejectReason::StrayQuote)
        } else if !(rec.start >= base && rec.content_end <= self.nul_free_until)
            && memchr(0, text).is_some()
        {
            // The text is the raw bytes minus quotes and delimiters: a record whose raw bytes
            // lie in the slice's NUL-free prefix has none (one scan per slice, not per record).
            Err(RejectReason::NulByte)
        } else {
            match utf8_fields(text, &rec.ends, raw_is_utf8) {
                None => Err(RejectReason::InvalidUtf8),
                Some(_) if rec.ends.len() != self.ncols => Err(RejectReason::RaggedRow),
                Some(s) => Ok(s),
            }
        };
        match verdict {
            Ok(s) => {
                // SAFETY: the parser's ends do not decrease, and `utf8_fields` returned `Some`
                // only if they are char boundaries of `s`.
                let record = unsafe { Record::new_unchecked(s, &rec.ends) };
                self.profile.observe(rec.start, &record);
                if let Some(runner) = self.rules.as_mut() {
                    match runner.check(&record, rec.start) {
                        Verdict::Reject(i) => {
                            self.rejected_rows += 1;
                            self.rule_rejected_rows += 1;
                            if self.emit_rows {
                                let o = &mut self.rej_out;
                                let _ = write!(
                                    o,
                                    "{},{},rule:{},",
                                    rec.start,
                                    rec.start_line,
                                    runner.rule_id(i)
                                );
                                write_field(o, String::from_utf8_lossy(raw).as_bytes());
                                o.push(b',');
                                write_field(o, runner.detail(i, &record).as_bytes());
                                o.push(b'\n');
                            }
                            self.raw.clear();
                            return;
                        }
                        Verdict::Keep if !runner.rules().passthrough() => {
                            self.rows += 1;
                            if self.emit_rows {
                                let unquoted = self.dialect.delimiter == b',' && !rec.any_quoted;
                                runner.write_clean_raw(
                                    &record,
                                    unquoted.then_some(raw),
                                    &mut self.out,
                                );
                                self.out.push(b'\n');
                            } else if self.derives {
                                runner.score_derived(&record);
                            }
                            if self.derives {
                                let held = runner.derived_held();
                                for (k, &score) in runner.derived_scores().iter().enumerate() {
                                    if held[k] {
                                        // Observed when its grade is given (`fill_model_rows`).
                                        continue;
                                    }
                                    self.scored_rows += u64::from(score.is_some());
                                    self.profile.observe_sentiment(k, score);
                                }
                            }
                            self.raw.clear();
                            return;
                        }
                        Verdict::Keep => {}
                    }
                }
                self.rows += 1;
                if self.emit_rows {
                    if self.dialect.delimiter == b',' && !rec.any_quoted {
                        self.out.extend_from_slice(raw);
                    } else {
                        write_fields(&mut self.out, s.as_bytes(), &rec.ends);
                    }
                    self.out.push(b'\n');
                }
            }
            Err(reason) => {
                self.rejected_rows += 1;
                self.profile.observe_rejected(rec.start, reason);
                if self.emit_rows {
                    let raw = if reason == RejectReason::FieldTooLarge {
                        &raw[..raw.len().min(self.cfg.max_field_bytes)]
                    } else {
                        raw
                    };
                    let o = &mut self.rej_out;
                    let _ = write!(o, "{},{},{},", rec.start, rec.start_line, reason.code());
                    write_field(o, String::from_utf8_lossy(raw).as_bytes());
                    o.extend_from_slice(b",\n");
                }
            }
        }
        self.raw.clear();
    }

    fn flush(
        &mut self,
        clean: &mut impl Write,
        rejected: &mut impl Write,
    ) -> Result<(), EngineError> {
        let mut hold = false;
        if let Some(runner) = self.rules.as_mut() {
            // Tokens computed two at a time: the last one may still be pending.
            runner.resolve(&mut self.out);
            // Rows waiting for a model grade stay until `fill_model_rows`.
            hold = !runner.model_rows().is_empty();
        }
        if !hold && !self.out.is_empty() {
            clean
                .write_all(&self.out)
                .map_err(|e| EngineError::io("writing the clean output", e))?;
            self.out.clear();
        }
        if !self.rej_out.is_empty() {
            rejected
                .write_all(&self.rej_out)
                .map_err(|e| EngineError::io("writing the rejected output", e))?;
            self.rej_out.clear();
        }
        Ok(())
    }
}

/// The record text as `&str` if it is valid UTF-8 and every field boundary is a char boundary
/// (which together mean every field, and so the raw record, is valid UTF-8).
///
/// `raw_is_utf8`: the record's raw bytes are known to be valid UTF-8. Then so is the text, which
/// is the raw bytes minus some ASCII bytes (quotes, delimiters), with every field end where such
/// an ASCII byte was; the text is complete because `too_large` records never get here.
fn utf8_fields<'a>(text: &'a [u8], ends: &[usize], raw_is_utf8: bool) -> Option<&'a str> {
    if raw_is_utf8 {
        debug_assert!(std::str::from_utf8(text).is_ok());
        // SAFETY: see above: removing whole ASCII characters from valid UTF-8 leaves valid
        // UTF-8, and field ends sit where such characters were removed.
        return Some(unsafe { std::str::from_utf8_unchecked(text) });
    }
    let s = std::str::from_utf8(text).ok()?;
    if ends.iter().all(|&e| s.is_char_boundary(e)) {
        Some(s)
    } else {
        None
    }
}
