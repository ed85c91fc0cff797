//! Running a query over a local file (or bytes in memory) the way a query job runs it over
//! an upload: sniff, decide the column types from the records in the first
//! [`SNIFF_BYTES`], plan the byte ranges with the exact split, build one [`PartialState`] per
//! range on N threads, read again the ranges whose guessed start state was wrong, merge the
//! states in range order and apply the final step. For `tessera query`.
//!
//! Not here: S3, queues (a query job calls [`run_range`] per task and [`finish`] at the end).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::compile::{compile, QueryOptions};
use super::doc::QueryDocument;
use super::error::QueryError;
use super::exec::PartialState;
use super::finish::{finish, QueryResult};
use super::plan::Plan;
use super::schema::{Schema, TypeTally};
use crate::chunk::{read_start, Feed};
use crate::dialect::{sniff_with_size, Dialect, DialectOverrides};
use crate::error::EngineError;
use crate::file::{ReadAt, SNIFF_BYTES};
use crate::parse::{ParserConfig, RecordBuf};
use crate::range::RangeReader;
use crate::split::{check_complete, plan as plan_ranges, validate, ChunkSummary, ChunkTask};

/// Options of [`query_file`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Bytes per range (>= 1).
    pub chunk_size: u64,
    /// Worker threads; 0 = all cores.
    pub workers: usize,
    /// Engine knobs (the group limit).
    pub query: QueryOptions,
    /// Size of each positioned read.
    pub read_buffer_bytes: usize,
    /// How far past its end a range on a guessed start state reads before it gives up.
    pub max_overrun: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            chunk_size: 64 << 20,
            workers: 0,
            query: QueryOptions::default(),
            read_buffer_bytes: 256 * 1024,
            max_overrun: 64 << 20,
        }
    }
}

/// The file layout a query runs over: dialect, header, column types.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The dialect.
    pub dialect: Dialect,
    /// Bytes of the header (the first range starts there).
    pub header_len: u64,
    /// Names and types.
    pub schema: Schema,
}

/// The text of a well-formed record, or `None` for a record the chunk worker would reject
/// (too large, stray quote, NUL byte, invalid UTF-8, wrong field count). `clean`: the record's
/// raw bytes lie in a region already known to be UTF-8 without NUL (then its unescaped text,
/// the raw bytes minus ASCII quotes and delimiters, is too, and every field end is a char
/// boundary).
#[inline]
pub fn well_formed(rec: &RecordBuf, ncols: usize, clean: bool) -> Option<&str> {
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

/// Ranges at least this long check UTF-8 and NUL bytes per read buffer ([`CleanRegion`]).
const WHOLE_BUFFER_CHECK_MIN: u64 = 64 << 10;

/// The file bytes `[start, end)` known to be valid UTF-8 without a NUL byte, grown one read
/// buffer at a time (one vectorised check per buffer instead of one per record).
#[derive(Default)]
struct CleanRegion {
    start: u64,
    end: u64,
}

impl CleanRegion {
    fn extend(&mut self, mut pos: u64, mut bytes: &[u8]) {
        if pos != self.end {
            // A range's first read may begin inside a character: start after it.
            let lead = bytes
                .iter()
                .take(3)
                .take_while(|&&c| c & 0xC0 == 0x80)
                .count();
            bytes = &bytes[lead..];
            pos += lead as u64;
            self.start = pos;
        }
        let valid = match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => bytes.len(),
            Err(e) => e.valid_up_to(),
        };
        let valid = memchr::memchr(0, &bytes[..valid]).unwrap_or(valid);
        if valid < bytes.len() {
            // Bad bytes: the region ends before them and starts again after this buffer.
            self.end = pos + valid as u64;
            if valid == 0 {
                self.start = pos + bytes.len() as u64;
                self.end = self.start;
            }
            return;
        }
        self.end = pos + bytes.len() as u64;
    }

    fn holds(&self, rec: &RecordBuf) -> bool {
        rec.start >= self.start && rec.content_end <= self.end
    }
}

/// The length of `b` without a UTF-8 character cut at its end (all of `b` when none is, or
/// when cutting would leave nothing).
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
        return if width > back && n > back {
            n - back
        } else {
            n
        };
    }
    n
}

fn reader(task: &ChunkTask, dialect: &Dialect, max_overrun: u64) -> RangeReader {
    let cfg = ParserConfig {
        delimiter: dialect.delimiter,
        quote: dialect.quote,
        ..ParserConfig::default()
    };
    RangeReader::new(task, cfg, max_overrun)
}

/// Reads the layout: sniffs the head of `src` and types the columns from its records.
pub fn layout<R: ReadAt + ?Sized>(src: &R, size: u64) -> Result<Layout, EngineError> {
    let mut head = vec![0u8; (size as usize).min(SNIFF_BYTES)];
    let mut got = 0;
    while got < head.len() {
        let n = src
            .read_at(&mut head[got..], got as u64)
            .map_err(|e| EngineError::io("reading the start of the file", e))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    head.truncate(got);
    let sn = sniff_with_size(&head, size, &DialectOverrides::default())?;
    let ncols = sn.columns.len();
    let mut tally = TypeTally::new(ncols);
    let task = ChunkTask {
        index: 0,
        start: sn.header_len,
        end: head.len() as u64,
        start_in_quotes: Some(false),
    };
    let mut r = reader(&task, &sn.dialect, 0);
    let mut take = |rec: &RecordBuf| {
        // Only records that end inside the head: the last one may be cut.
        if rec.content_end < head.len() as u64 || got as u64 == size {
            if let Some(text) = well_formed(rec, ncols, false) {
                tally.observe(fields(text, &rec.ends));
            }
        }
    };
    if head.len() as u64 > sn.header_len {
        r.feed(&head[sn.header_len as usize..], &mut take)?;
    }
    // A record cut by the end of the head may leave quotes open: that is not an error here.
    let _ = r.finish(&mut take);
    Ok(Layout {
        dialect: sn.dialect,
        header_len: sn.header_len,
        schema: Schema {
            columns: sn.columns,
            types: tally.types(),
        },
    })
}

fn fields<'a>(text: &'a str, ends: &'a [usize]) -> impl Iterator<Item = &'a str> + 'a {
    let mut s = 0;
    ends.iter().map(move |&e| {
        let f = &text[s..e];
        s = e;
        f
    })
}

/// One range's partial state (what a query task computes), and what validation needs.
pub fn run_range<R: ReadAt + ?Sized>(
    src: &R,
    size: u64,
    task: &ChunkTask,
    dialect: &Dialect,
    plan: &Plan,
    opts: &RunOptions,
) -> Result<(PartialState, ChunkSummary), QueryError> {
    let mut state = PartialState::new(plan);
    let mut r = reader(task, dialect, opts.max_overrun);
    let err: std::cell::Cell<Option<QueryError>> = std::cell::Cell::new(None);
    let failed = std::cell::Cell::new(false);
    let ncols = plan.ncols;
    let region = std::cell::RefCell::new(CleanRegion::default());
    // A short range would validate far more bytes than it owns (a read buffer, the guess
    // window): check its records one by one instead. Both paths meet in the tests (short
    // ranges against one long one).
    let whole_buffers = task.end - task.start >= WHOLE_BUFFER_CHECK_MIN;
    let mut on = |rec: &RecordBuf| {
        if failed.get() {
            return;
        }
        let clean = region.borrow().holds(rec);
        match well_formed(rec, ncols, clean) {
            Some(text) => {
                if let Err(e) = state.observe(plan, text, &rec.ends) {
                    err.set(Some(e));
                    failed.set(true);
                }
            }
            None => state.rejected_rows += 1,
        }
    };
    let mut buf = vec![0u8; opts.read_buffer_bytes.max(1)];
    let mut pos = read_start(task);
    while pos < size {
        let want = buf.len().min((size - pos) as usize);
        let n = src
            .read_at(&mut buf[..want], pos)
            .map_err(|e| EngineError::io(format!("reading at byte {pos}"), e))?;
        if n == 0 {
            break;
        }
        // Feed whole characters only (the cut one is read again next time), so that every
        // buffer of a UTF-8 file validates as a whole.
        let n = if pos + (n as u64) < size {
            char_cut(&buf[..n])
        } else {
            n
        };
        if whole_buffers {
            region.borrow_mut().extend(pos, &buf[..n]);
        }
        pos += n as u64;
        if r.feed(&buf[..n], &mut on)? == Feed::Done || failed.get() {
            break;
        }
    }
    let summary = r.finish(&mut on)?;
    match err.into_inner() {
        Some(e) => Err(e),
        None => Ok((state, summary)),
    }
}

/// Runs `doc` over the whole of `src` (see the module docs).
pub fn query_source<R: ReadAt + ?Sized>(
    src: &R,
    size: u64,
    doc: &QueryDocument,
    opts: &RunOptions,
) -> Result<QueryResult, QueryError> {
    let layout = layout(src, size)?;
    let plan = compile(doc, &layout.schema, &opts.query)?;
    let tasks = plan_ranges(size, layout.header_len, opts.chunk_size);
    let workers = match opts.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let run = |t: &ChunkTask| run_range(src, size, t, &layout.dialect, &plan, opts);
    let mut results = run_all(&tasks, workers, &run)?;
    let summaries: Vec<ChunkSummary> = results.iter().map(|r| r.1).collect();
    let again: Vec<ChunkTask> = validate(&summaries)
        .into_iter()
        .map(|(i, q)| ChunkTask {
            start_in_quotes: Some(q),
            ..tasks[i as usize]
        })
        .collect();
    for (t, r) in again.iter().zip(run_all(&again, workers, &run)?) {
        results[t.index as usize] = r;
    }
    let summaries: Vec<ChunkSummary> = results.iter().map(|r| r.1).collect();
    check_complete(&summaries)?;
    let mut total = PartialState::new(&plan);
    for (s, _) in &results {
        total.merge(&plan, s)?;
    }
    finish(&plan, &total)
}

/// [`query_source`] over an in-memory file.
pub fn query_bytes(
    data: &[u8],
    doc: &QueryDocument,
    opts: &RunOptions,
) -> Result<QueryResult, QueryError> {
    query_source(data, data.len() as u64, doc, opts)
}

/// [`query_source`] over a local file.
pub fn query_file(
    path: &Path,
    doc: &QueryDocument,
    opts: &RunOptions,
) -> Result<QueryResult, QueryError> {
    let file = std::fs::File::open(path)
        .map_err(|e| EngineError::io(format!("opening {}", path.display()), e))?;
    let size = file
        .metadata()
        .map_err(|e| EngineError::io(format!("reading the size of {}", path.display()), e))?
        .len();
    query_source(&file, size, doc, opts)
}

type RangeOut = (PartialState, ChunkSummary);

/// Runs `tasks` on `workers` threads; results in task order; the first error by task order.
fn run_all(
    tasks: &[ChunkTask],
    workers: usize,
    run: &(dyn Fn(&ChunkTask) -> Result<RangeOut, QueryError> + Sync),
) -> Result<Vec<RangeOut>, QueryError> {
    if workers <= 1 || tasks.len() <= 1 {
        return tasks.iter().map(run).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<Result<RangeOut, QueryError>>>> =
        Mutex::new((0..tasks.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.min(tasks.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tasks.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                let r = run(&tasks[i]);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                slots.lock().expect("result lock")[i] = Some(r);
            });
        }
    });
    let mut out = Vec::with_capacity(tasks.len());
    for r in slots.into_inner().expect("result lock") {
        match r {
            Some(r) => out.push(r?),
            None => {
                return Err(QueryError::BadState(
                    "a worker stopped before its ranges were done".into(),
                ))
            }
        }
    }
    Ok(out)
}
