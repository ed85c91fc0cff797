//! Parallel processing of a local file (or an in-memory byte slice) with exactly the chunk
//! worker's code: sniff, plan byte ranges, run them on N threads with positioned reads and a
//! bounded buffer, validate the guessed quote states, re-run the mispredicted chunks, and stitch
//! `clean.csv`, `rejected.csv` and `profile.json`.
//!
//! Not here: S3, queues, the CLI (another layer wires `tessera process` to [`process_file`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::chunk::{
    read_start, rebase_rejected, write_fields, ChunkOptions, ChunkProcessor, ChunkResult, Feed,
    REJECTED_HEADER,
};
use crate::dialect::{sniff_with_size, Dialect, DialectOverrides, Sniffed};
use crate::error::EngineError;
use crate::profile::ProfileState;
use crate::split::{check_complete, plan, ChunkSummary, ChunkTask};

/// How many leading bytes the sniffer sees.
pub const SNIFF_BYTES: usize = 4 << 20;

/// Options of [`process_file`].
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Bytes per chunk (>= 1).
    pub chunk_size: u64,
    /// Worker threads; 0 = all cores.
    pub workers: usize,
    /// Where clean.csv, rejected.csv and profile.json go (created if missing).
    pub out_dir: PathBuf,
    /// Only write profile.json.
    pub profile_only: bool,
    /// Explicit dialect options.
    pub dialect: DialectOverrides,
    /// Per-chunk options (limits, profile options).
    pub chunk: ChunkOptions,
    /// Size of each positioned read.
    pub read_buffer_bytes: usize,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            chunk_size: 64 << 20,
            workers: 0,
            out_dir: PathBuf::from("out"),
            profile_only: false,
            dialect: DialectOverrides::default(),
            chunk: ChunkOptions::default(),
            read_buffer_bytes: 256 * 1024,
        }
    }
}

/// What [`process_file`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessSummary {
    /// The dialect used.
    pub dialect: Dialect,
    /// Column names.
    pub columns: Vec<String>,
    /// File size in bytes.
    pub bytes: u64,
    /// Clean records.
    pub rows: u64,
    /// Rejected records.
    pub rejected_rows: u64,
    /// Empty lines skipped.
    pub blank_lines: u64,
    /// Number of chunks.
    pub chunks: u32,
    /// Chunks re-run because their guessed start state was wrong.
    pub reruns: u32,
    /// Wall-clock seconds.
    pub elapsed_seconds: f64,
    /// Violations per rule id over the whole file (empty without rules). `unique` rules are
    /// counted exactly here, after all chunks (their repeats are reported, not moved: see
    /// docs/rules.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub violations: BTreeMap<String, u64>,
    /// Records rejected by rules (included in `rejected_rows`).
    #[serde(default)]
    pub rule_rejected_rows: u64,
    /// `unique` repeats: rule id -> `(byte offset of the repeat, byte offset of the first
    /// occurrence)`, in file order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub duplicates: BTreeMap<String, Vec<(u64, u64)>>,
}

/// Positioned reads, so workers share one open file without seeking.
pub trait ReadAt: Sync {
    /// Reads up to `buf.len()` bytes at `offset`; 0 means end of input.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = (offset as usize).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Runs one chunk over a positioned-read source with a `buf_size` read buffer.
#[allow(clippy::too_many_arguments)]
pub fn run_chunk<R: ReadAt + ?Sized>(
    src: &R,
    file_size: u64,
    task: &ChunkTask,
    dialect: &Dialect,
    columns: &[String],
    opts: &ChunkOptions,
    buf_size: usize,
    clean: &mut impl Write,
    rejected: &mut impl Write,
) -> Result<ChunkResult, EngineError> {
    let mut proc = ChunkProcessor::new(task, dialect, columns, opts);
    let mut buf = vec![0u8; buf_size.max(1)];
    let mut pos = read_start(task);
    while pos < file_size {
        let want = buf.len().min((file_size - pos) as usize);
        let n = src
            .read_at(&mut buf[..want], pos)
            .map_err(|e| EngineError::io(format!("reading at byte {pos}"), e))?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        if proc.feed(&buf[..n], clean, rejected)? == Feed::Done {
            break;
        }
    }
    proc.finish(clean, rejected)
}

/// Where chunk parts live between the parallel phase and stitching.
trait PartStore: Sync {
    type W: Write;
    fn create(&self, index: u32, kind: &str) -> Result<Self::W, EngineError>;
    fn commit(&self, index: u32, kind: &str, w: Self::W) -> Result<(), EngineError>;
    fn open(&self, index: u32, kind: &str) -> Result<Box<dyn Read + '_>, EngineError>;
}

struct DirParts(PathBuf);

impl DirParts {
    fn path(&self, index: u32, kind: &str) -> PathBuf {
        self.0.join(format!("{kind}-{index:06}.csv"))
    }
}

impl PartStore for DirParts {
    type W = BufWriter<File>;
    fn create(&self, index: u32, kind: &str) -> Result<Self::W, EngineError> {
        let p = self.path(index, kind);
        let f = File::create(&p)
            .map_err(|e| EngineError::io(format!("creating {}", p.display()), e))?;
        Ok(BufWriter::with_capacity(256 * 1024, f))
    }
    fn commit(&self, _index: u32, _kind: &str, mut w: Self::W) -> Result<(), EngineError> {
        w.flush()
            .map_err(|e| EngineError::io("flushing a part file", e))
    }
    fn open(&self, index: u32, kind: &str) -> Result<Box<dyn Read + '_>, EngineError> {
        let p = self.path(index, kind);
        let f =
            File::open(&p).map_err(|e| EngineError::io(format!("opening {}", p.display()), e))?;
        Ok(Box::new(f))
    }
}

#[derive(Default)]
struct MemParts(Mutex<std::collections::HashMap<(u32, String), Vec<u8>>>);

impl PartStore for MemParts {
    type W = Vec<u8>;
    fn create(&self, _index: u32, _kind: &str) -> Result<Self::W, EngineError> {
        Ok(Vec::new())
    }
    fn commit(&self, index: u32, kind: &str, w: Self::W) -> Result<(), EngineError> {
        self.0
            .lock()
            .expect("part map lock")
            .insert((index, kind.to_string()), w);
        Ok(())
    }
    fn open(&self, index: u32, kind: &str) -> Result<Box<dyn Read + '_>, EngineError> {
        let v = self
            .0
            .lock()
            .expect("part map lock")
            .get(&(index, kind.to_string()))
            .cloned()
            .unwrap_or_default();
        Ok(Box::new(std::io::Cursor::new(v)))
    }
}

/// The stitched result of an in-memory run ([`process_bytes`]).
#[derive(Debug, Clone)]
pub struct MemOutput {
    /// clean.csv bytes (header first).
    pub clean: Vec<u8>,
    /// rejected.csv bytes (header first).
    pub rejected: Vec<u8>,
    /// The merged profile.
    pub profile: ProfileState,
    /// Counters.
    pub summary: ProcessSummary,
    /// The chunk results after re-runs, in order.
    pub chunks: Vec<ChunkResult>,
}

/// Processes an in-memory file exactly as [`process_file`] does (same planning, guessing,
/// validation, re-runs and stitching); used by tests and the fuzz target.
pub fn process_bytes(data: &[u8], opts: &ProcessOptions) -> Result<MemOutput, EngineError> {
    let parts = MemParts::default();
    let mut clean = Vec::new();
    let mut rejected = Vec::new();
    let (summary, profile, chunks) = process_source(
        data,
        data.len() as u64,
        opts,
        &parts,
        &mut clean,
        &mut rejected,
    )?;
    Ok(MemOutput {
        clean,
        rejected,
        profile,
        summary,
        chunks,
    })
}

/// Processes a local file: writes `clean.csv`, `rejected.csv` (unless `profile_only`) and
/// `profile.json` into `opts.out_dir`.
pub fn process_file(path: &Path, opts: &ProcessOptions) -> Result<ProcessSummary, EngineError> {
    let file =
        File::open(path).map_err(|e| EngineError::io(format!("opening {}", path.display()), e))?;
    let size = file
        .metadata()
        .map_err(|e| EngineError::io(format!("reading the size of {}", path.display()), e))?
        .len();
    let out_dir = &opts.out_dir;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| EngineError::io(format!("creating {}", out_dir.display()), e))?;
    let parts_dir = out_dir.join(".parts");
    std::fs::create_dir_all(&parts_dir)
        .map_err(|e| EngineError::io(format!("creating {}", parts_dir.display()), e))?;
    let parts = DirParts(parts_dir.clone());
    let create = |name: &str| -> Result<BufWriter<File>, EngineError> {
        let p = out_dir.join(name);
        let f = File::create(&p)
            .map_err(|e| EngineError::io(format!("creating {}", p.display()), e))?;
        Ok(BufWriter::with_capacity(256 * 1024, f))
    };
    let result = if opts.profile_only {
        process_source(
            &file,
            size,
            opts,
            &parts,
            &mut std::io::sink(),
            &mut std::io::sink(),
        )
    } else {
        let mut clean = create("clean.csv")?;
        let mut rejected = create("rejected.csv")?;
        let r = process_source(&file, size, opts, &parts, &mut clean, &mut rejected);
        if r.is_ok() {
            clean
                .flush()
                .map_err(|e| EngineError::io("writing clean.csv", e))?;
            rejected
                .flush()
                .map_err(|e| EngineError::io("writing rejected.csv", e))?;
        }
        r
    };
    let _ = std::fs::remove_dir_all(&parts_dir);
    let (summary, profile, _) = result?;
    let json =
        serde_json::to_vec_pretty(&profile.report()).map_err(|source| EngineError::Encode {
            what: "profile.json",
            source,
        })?;
    std::fs::write(out_dir.join("profile.json"), json)
        .map_err(|e| EngineError::io("writing profile.json", e))?;
    Ok(summary)
}

/// The first bytes of `src` (up to the sniff window), for sniffing its dialect and header.
pub(crate) fn read_head<R: ReadAt + ?Sized>(src: &R, size: u64) -> Result<Vec<u8>, EngineError> {
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
    Ok(head)
}

fn process_source<R: ReadAt + ?Sized, P: PartStore>(
    src: &R,
    size: u64,
    opts: &ProcessOptions,
    parts: &P,
    clean: &mut impl Write,
    rejected: &mut impl Write,
) -> Result<(ProcessSummary, ProfileState, Vec<ChunkResult>), EngineError> {
    let t0 = Instant::now();
    let head = read_head(src, size)?;
    let Sniffed {
        dialect,
        columns,
        header_len,
        header_lines,
    } = sniff_with_size(&head, size, &opts.dialect)?;
    drop(head);
    let tasks = plan(size, header_len, opts.chunk_size);
    let workers = if opts.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.workers
    };
    let mut chunk_opts = opts.chunk.clone();
    if opts.profile_only {
        chunk_opts.emit_rows = false;
    }
    let ctx = RunCtx {
        src,
        size,
        dialect: &dialect,
        columns: &columns,
        opts: &chunk_opts,
        buf: opts.read_buffer_bytes,
        parts,
    };
    let mut results = ctx.run_all(&tasks, workers)?;
    let summaries: Vec<ChunkSummary> = results.iter().map(ChunkResult::summary).collect();
    let reruns: Vec<ChunkTask> = crate::split::validate(&summaries)
        .into_iter()
        .map(|(i, q)| ChunkTask {
            start_in_quotes: Some(q),
            ..tasks[i as usize]
        })
        .collect();
    if !reruns.is_empty() {
        for r in ctx.run_all(&reruns, workers)? {
            let i = r.index as usize;
            results[i] = r;
        }
    }
    let summaries: Vec<ChunkSummary> = results.iter().map(ChunkResult::summary).collect();
    check_complete(&summaries)?;

    // Stitch.
    let mut profile = ProfileState::new(columns.clone(), &chunk_opts.profile);
    for r in &results {
        profile.merge(&r.profile);
    }
    let (violations, duplicates) = rule_totals(src, &dialect, &chunk_opts, &mut results)?;
    // The records that repeat a `unique` value are known only now: re-run the chunks that own
    // them with that answer, so the repeats are rejected (or flagged) like any other violation.
    let starts: Vec<u64> = tasks.iter().map(|t| t.start).collect();
    let (chunks, known) = crate::rules::unique::rerun_plan(&duplicates, &starts);
    if !chunks.is_empty() && chunk_opts.emit_rows {
        let rerun_opts = ChunkOptions {
            unique_repeats: Some(std::sync::Arc::new(known)),
            ..chunk_opts.clone()
        };
        let rerun_ctx = RunCtx {
            opts: &rerun_opts,
            ..ctx
        };
        let again: Vec<ChunkTask> = chunks
            .iter()
            .map(|&i| ChunkTask {
                start_in_quotes: Some(results[i as usize].assumed_start_in_quotes),
                ..tasks[i as usize]
            })
            .collect();
        for r in rerun_ctx.run_all(&again, workers)? {
            let i = r.index as usize;
            results[i] = r;
        }
    }
    if chunk_opts.emit_rows {
        let mut head = Vec::new();
        let out_columns = match &chunk_opts.rules {
            Some(r) => r.output_columns().to_vec(),
            None => columns.clone(),
        };
        let columns = &out_columns;
        let ends: Vec<usize> = columns
            .iter()
            .scan(0, |acc, c| {
                *acc += c.len();
                Some(*acc)
            })
            .collect();
        if !columns.is_empty() {
            write_fields(&mut head, columns.concat().as_bytes(), &ends);
            head.push(b'\n');
        }
        clean
            .write_all(&head)
            .map_err(|e| EngineError::io("writing clean.csv", e))?;
        rejected
            .write_all(REJECTED_HEADER.as_bytes())
            .map_err(|e| EngineError::io("writing rejected.csv", e))?;
        let mut line_base = 1 + header_lines;
        for r in &results {
            let mut part = parts.open(r.index, "clean")?;
            std::io::copy(&mut part, clean).map_err(|e| EngineError::io("writing clean.csv", e))?;
            if r.rejected_rows > 0 {
                rebase_rejected(parts.open(r.index, "rejected")?, line_base, rejected)?;
            }
            line_base += r.newline_count_in_range;
        }
    }
    let summary = ProcessSummary {
        dialect,
        columns,
        bytes: size,
        rows: results.iter().map(|r| r.rows).sum(),
        rejected_rows: results.iter().map(|r| r.rejected_rows).sum(),
        blank_lines: results.iter().map(|r| r.blank_lines).sum(),
        chunks: results.len() as u32,
        reruns: reruns.len() as u32,
        elapsed_seconds: t0.elapsed().as_secs_f64(),
        violations,
        rule_rejected_rows: results.iter().map(|r| r.rule_rejected_rows).sum(),
        duplicates,
    };
    Ok((summary, profile, results))
}

/// The values of column `column` (by header name) of a whole CSV file in memory: how a caller
/// loads a `one_of` reference list (`rules::ResolvedRefs`). Malformed records are skipped; the
/// error names the columns when `column` is not one of them.
pub fn read_column_values(data: &[u8], column: &str) -> Result<Vec<String>, EngineError> {
    use crate::parse::{Outcome, Parser, ParserConfig, RecordBuf, State};
    let sn = crate::dialect::sniff(data, &DialectOverrides::default())?;
    let Some(col) = sn.columns.iter().position(|c| c == column) else {
        return Err(EngineError::InvalidOption {
            detail: format!(
                "the reference file has no column `{column}`; its columns are: {}",
                sn.columns.join(", ")
            ),
        });
    };
    let cfg = ParserConfig {
        delimiter: sn.dialect.delimiter,
        quote: sn.dialect.quote,
        ..ParserConfig::default()
    };
    let start = sn.header_len as usize;
    let mut p = Parser::new(cfg, State::LineStart, start as u64, u64::MAX);
    let mut rec = RecordBuf::default();
    let mut out = Vec::new();
    let mut take = |rec: &RecordBuf| {
        if rec.too_large || rec.stray_quote || col >= rec.ends.len() {
            return;
        }
        let s = if col == 0 { 0 } else { rec.ends[col - 1] };
        if let Ok(v) = std::str::from_utf8(&rec.text[s..rec.ends[col]]) {
            out.push(v.to_string());
        }
    };
    let mut off = start.min(data.len());
    while off < data.len() {
        let (o, used) = p.parse(&data[off..], &mut rec);
        off += used;
        if o == Outcome::Record {
            take(&rec);
        }
    }
    if p.finish(&mut rec)? == Outcome::Record {
        take(&rec);
    }
    Ok(out)
}

type RuleTotals = (BTreeMap<String, u64>, BTreeMap<String, Vec<(u64, u64)>>);

/// Adds up the chunks' violation counts and runs the exact second pass of `unique` rules
/// (hash groups verified by re-reading the values at their offsets).
fn rule_totals<R: ReadAt + ?Sized>(
    src: &R,
    dialect: &Dialect,
    opts: &ChunkOptions,
    results: &mut [ChunkResult],
) -> Result<RuleTotals, EngineError> {
    let mut violations: BTreeMap<String, u64> = BTreeMap::new();
    let mut duplicates = BTreeMap::new();
    if opts.rules.is_none() {
        return Ok((violations, duplicates));
    }
    for r in results.iter() {
        for (k, v) in &r.violations {
            *violations.entry(k.clone()).or_default() += v;
        }
    }
    let mut by_rule: BTreeMap<String, (usize, Vec<(u64, u64)>)> = BTreeMap::new();
    for r in results.iter_mut() {
        for k in std::mem::take(&mut r.unique_keys) {
            let e = by_rule.entry(k.rule).or_insert((k.column, Vec::new()));
            e.1.extend(k.entries);
        }
    }
    for (rule, (column, mut entries)) in by_rule {
        let groups = crate::rules::unique::candidate_groups(&mut entries);
        drop(entries);
        let dups = crate::rules::unique::exact_duplicates(&groups, |off| {
            read_field_at(src, dialect, opts, off, column)
        })?;
        *violations.entry(rule.clone()).or_default() += dups.len() as u64;
        if !dups.is_empty() {
            duplicates.insert(rule, dups);
        }
    }
    Ok((violations, duplicates))
}

/// Field `column` of the record that starts at byte `offset` (`rules::unique::field_at_start`
/// on a 64 KiB window, longer for longer records).
fn read_field_at<R: ReadAt + ?Sized>(
    src: &R,
    dialect: &Dialect,
    opts: &ChunkOptions,
    offset: u64,
    column: usize,
) -> Result<String, EngineError> {
    let cfg = crate::parse::ParserConfig {
        delimiter: dialect.delimiter,
        quote: dialect.quote,
        max_field_bytes: opts.max_field_bytes,
        max_record_bytes: opts.max_record_bytes,
    };
    let mut window = 64 << 10;
    loop {
        let mut buf = vec![0u8; window];
        let mut got = 0;
        while got < buf.len() {
            let pos = offset + got as u64;
            let n = src
                .read_at(&mut buf[got..], pos)
                .map_err(|e| EngineError::io(format!("reading at byte {pos}"), e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        if let Some(v) = crate::rules::unique::field_at_start(&buf, cfg, column, got < window)? {
            return Ok(v);
        }
        window *= 4;
    }
}

struct RunCtx<'a, R: ?Sized, P> {
    src: &'a R,
    size: u64,
    dialect: &'a Dialect,
    columns: &'a [String],
    opts: &'a ChunkOptions,
    buf: usize,
    parts: &'a P,
}

impl<R: ReadAt + ?Sized, P: PartStore> RunCtx<'_, R, P> {
    fn run_one(&self, task: &ChunkTask) -> Result<ChunkResult, EngineError> {
        let mut clean = self.parts.create(task.index, "clean")?;
        let mut rejected = self.parts.create(task.index, "rejected")?;
        let r = run_chunk(
            self.src,
            self.size,
            task,
            self.dialect,
            self.columns,
            self.opts,
            self.buf,
            &mut clean,
            &mut rejected,
        )?;
        self.parts.commit(task.index, "clean", clean)?;
        self.parts.commit(task.index, "rejected", rejected)?;
        Ok(r)
    }

    /// Runs `tasks` on `workers` threads; results come back in task order.
    fn run_all(&self, tasks: &[ChunkTask], workers: usize) -> Result<Vec<ChunkResult>, EngineError>
    where
        R: Sync,
    {
        if workers <= 1 || tasks.len() <= 1 {
            // No thread for a single worker (cheaper for small files and the fuzz target).
            return tasks.iter().map(|t| self.run_one(t)).collect();
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let slots: Mutex<Vec<Option<Result<ChunkResult, EngineError>>>> =
            Mutex::new((0..tasks.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..workers.clamp(1, tasks.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tasks.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = self.run_one(&tasks[i]);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    slots.lock().expect("result lock")[i] = Some(r);
                });
            }
        });
        let slots = slots.into_inner().expect("result lock");
        let mut out = Vec::with_capacity(tasks.len());
        let mut first_err = None;
        for r in slots.into_iter().flatten() {
            match r {
                Ok(r) => out.push(r),
                Err(e) => {
                    // The earliest failing chunk's error (chunks fail in file order of cause).
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if out.len() != tasks.len() {
            return Err(EngineError::InvalidOption {
                detail: "a worker stopped before finishing its chunks".into(),
            });
        }
        Ok(out)
    }
}
