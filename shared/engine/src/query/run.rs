//! Running a query over a local file (or bytes in memory) the way a query job runs it over
//! an upload: sniff, decide the column types from the records in the first
//! [`SNIFF_BYTES`](crate::file::SNIFF_BYTES), plan the byte ranges with the exact split, build one [`PartialState`] per
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
use super::scan::{well_formed, RangeQuery};
use super::schema::{Schema, TypeTally};
use crate::chunk::{read_start, Feed};
use crate::dialect::{sniff_with_size, Dialect, DialectOverrides};
use crate::error::EngineError;
use crate::file::ReadAt;
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
    let head = crate::file::read_head(src, size)?;
    let sn = sniff_with_size(&head, size, &DialectOverrides::default())?;
    let types = head_types(&head, size, &sn.dialect, sn.header_len, sn.columns.len());
    Ok(Layout {
        dialect: sn.dialect,
        header_len: sn.header_len,
        schema: Schema {
            columns: sn.columns,
            types,
        },
    })
}

/// The column types the records of `head` (the first bytes of a file of `size` bytes, whose
/// dialect and header length are known) suggest: what [`layout`] decides, for a caller that
/// already knows the dialect (a job's source planned with the user's CSV options).
pub fn head_types(
    head: &[u8],
    size: u64,
    dialect: &Dialect,
    header_len: u64,
    ncols: usize,
) -> Vec<super::doc::ValueType> {
    let mut tally = TypeTally::new(ncols);
    let task = ChunkTask {
        index: 0,
        start: header_len,
        end: head.len() as u64,
        start_in_quotes: Some(false),
    };
    let mut r = reader(&task, dialect, 0);
    let mut take = |rec: &RecordBuf| {
        // Only records that end inside the head: the last one may be cut.
        if rec.content_end < head.len() as u64 || head.len() as u64 == size {
            if let Some(text) = well_formed(rec, ncols, false) {
                tally.observe(fields(text, &rec.ends));
            }
        }
    };
    if head.len() as u64 > header_len {
        // A record cut by the end of the head may leave quotes open or fail: the records
        // read so far still count.
        let _ = r.feed(&head[header_len as usize..], &mut take);
        let _ = r.finish(&mut take);
    }
    tally.types()
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
    let mut scan = RangeQuery::new(task, dialect, plan, opts.max_overrun);
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
        pos += n as u64;
        if scan.feed(&buf[..n])? == Feed::Done {
            break;
        }
    }
    scan.finish()
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
