//! `tessera rules suggest`: offline rule suggestions for a local file. Profiles the file with
//! the engine code `tessera process` runs (with the suggestion profile options: no null
//! tokens, top 50 values), asks [`tessera_shared::engine::rules::suggest`] for a rule document,
//! dry-runs it over the file and drops any rule the file violates, then prints the document
//! (which `tessera process FILE --rules RULES.json` accepts) and the reasons.
//!
//! Not here: the suggestion logic (pure, in the engine), models, the API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use tessera_shared::engine::file::{process_file, ProcessOptions, ProcessSummary};
use tessera_shared::engine::profile::ProfileReport;
use tessera_shared::engine::rules::suggest::{
    suggest, suggest_profile_options, SuggestOptions, Suggestion,
};
use tessera_shared::engine::rules::{CompiledRules, ResolvedRefs};

/// `tessera rules ...`.
#[derive(Subcommand)]
pub enum RulesCommand {
    /// Suggest a rule document from FILE's profile (completeness, types, ranges with a margin,
    /// one_of for low-cardinality columns, e-mail and ID formats, unique IDs), verified by a
    /// dry run over FILE: prints the document (JSON) on stdout or writes --out, and one reason
    /// per rule on stderr. The document is what `tessera process FILE --rules` takes.
    Suggest(SuggestArgs),
}

/// Flags of `tessera rules suggest`.
#[derive(Args)]
pub struct SuggestArgs {
    /// The CSV file.
    file: PathBuf,
    /// Write the rule document here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bytes per chunk.
    #[arg(long, default_value_t = 64 << 20)]
    chunk_size: u64,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Print `{"source", "rules", "reasons", "notes", "dry_run"}` as JSON on stdout (the rules
    /// alone still go to --out when given) instead of reasons on stderr.
    #[arg(long)]
    json: bool,
    /// Skip the dry run: keep rules that rest on a sample or an estimate unverified.
    #[arg(long)]
    no_verify: bool,
}

/// Runs a `tessera rules` subcommand.
pub fn run(cmd: RulesCommand) -> Result<()> {
    match cmd {
        RulesCommand::Suggest(args) => suggest_cmd(&args),
    }
}

/// A scratch directory for the engine's part files and profile.json, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn suggest_cmd(a: &SuggestArgs) -> Result<()> {
    if a.chunk_size == 0 {
        bail!("--chunk-size must be at least 1 byte");
    }
    if !a.file.is_file() {
        bail!(
            "{} is not a readable file; pass the path of a CSV file",
            a.file.display()
        );
    }
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "tessera-rules-suggest-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )));
    let mut opts = ProcessOptions {
        chunk_size: a.chunk_size,
        workers: a.workers,
        out_dir: scratch.0.clone(),
        profile_only: true,
        ..ProcessOptions::default()
    };
    opts.chunk.profile = suggest_profile_options();
    let summary =
        process_file(&a.file, &opts).with_context(|| format!("profiling {}", a.file.display()))?;
    let report = read_profile(&scratch.0)?;
    let mut s = suggest(&report, &SuggestOptions::for_profile(&opts.chunk.profile));
    let records = report.rows;
    let mut dry = json!(null);
    if !a.no_verify && !s.rules.rules.is_empty() {
        let checked = dry_run(&a.file, &s, &summary, &opts)?;
        let dropped = s.prune(
            &checked.violations,
            checked.rows + checked.rule_rejected_rows,
        );
        dry = json!({
            "records": checked.rows + checked.rule_rejected_rows,
            "rejected_before_pruning": checked.rule_rejected_rows,
            "dropped": dropped,
        });
    }
    let doc = serde_json::to_string_pretty(&s.rules)?;
    if let Some(out) = &a.out {
        std::fs::write(out, format!("{doc}\n"))
            .with_context(|| format!("writing the rule document to {}", out.display()))?;
    }
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        v["dry_run"] = dry;
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    if a.out.is_none() {
        println!("{doc}");
    }
    print_reasons(&a.file, &s, records, &dry, a.out.as_deref());
    Ok(())
}

fn read_profile(dir: &Path) -> Result<ProfileReport> {
    let path = dir.join("profile.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("decoding {}", path.display()))
}

/// Runs the suggested rules over the file (no outputs), for their violation counts.
fn dry_run(
    file: &Path,
    s: &Suggestion,
    profiled: &ProcessSummary,
    opts: &ProcessOptions,
) -> Result<ProcessSummary> {
    let compiled = CompiledRules::compile(&s.rules, &profiled.columns, &ResolvedRefs::none(), None)
        .map_err(|errs| {
            // A bug, not a user error: the suggestions are built to compile.
            let list: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
            anyhow::anyhow!(
                "internal error: the suggested rules do not compile against {}:\n{}",
                file.display(),
                list.join("\n")
            )
        })?;
    let mut o = opts.clone();
    o.chunk.rules = Some(Arc::new(compiled));
    process_file(file, &o).with_context(|| format!("dry-running the rules over {}", file.display()))
}

fn print_reasons(
    file: &Path,
    s: &Suggestion,
    records: u64,
    dry: &serde_json::Value,
    out: Option<&Path>,
) {
    eprintln!(
        "{} rules suggested from the profile of {} ({records} records){}:",
        s.rules.rules.len(),
        file.display(),
        out.map(|o| format!(", written to {}", o.display()))
            .unwrap_or_default()
    );
    for r in &s.reasons {
        eprintln!("  {}: {}", r.id, r.why);
    }
    for n in &s.notes {
        match &n.id {
            Some(id) => eprintln!("  (dropped {id}) {}", n.why),
            None => eprintln!("  (note) {}", n.why),
        }
    }
    if dry.is_null() {
        eprintln!("not verified (--no-verify, or no rules): run `tessera process FILE --rules` to see what they reject");
    } else {
        eprintln!(
            "dry run over {} records: {} rejected before pruning, {} rules dropped; the document rejects none of them",
            dry["records"], dry["rejected_before_pruning"],
            dry["dropped"].as_array().map_or(0, Vec::len)
        );
    }
}
