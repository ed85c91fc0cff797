//! The pure parts of the `model` sentiment engine (docs/sentiment.md, "The model engine"):
//! the rows a chunk hands out to be graded ([`ModelRow`]), what comes back ([`Grade`]) and how
//! it is written, personal data masked out of the text ([`mask`]), rows cut into batches
//! ([`batches`]), the model's answer checked against its schema ([`parse_results`]), and the
//! deterministic sample ([`sampled`]).
//!
//! Not here: calling the model, its prompt and tool, rate limits and cost (the shared crate's
//! `grading` module); where the grades go in the clean row (`rules::clean_row`, `chunk`).

pub mod mask;

use serde_json::Value;

use crate::sentiment::{Label, ScoreText};

/// One clean row's text waiting for its grade: what a chunk with a `model` derive step hands
/// to its caller ([`crate::chunk::ChunkProcessor::model_rows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    /// Byte offset of the record in the file: the row's identity, whatever the chunk size.
    pub offset: u64,
    /// Which `model` step (index among the document's model steps, in output order).
    pub step: u16,
    /// Which `derive` step (index among all of them, in output order: the profile's index).
    pub derive: usize,
    /// The source value as read (not masked: masking happens before anything leaves, see
    /// [`mask::mask_pii`]).
    pub text: String,
    /// Where the grade goes in the chunk's pending clean output.
    pub(crate) at: usize,
}

/// The grade of one row, as written into the two derived columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grade {
    /// The model's score in [-1, 1] (4 fraction digits) and its label.
    Scored(f64, Label),
    /// The model's answer for the row's batch was malformed twice: empty score, `model_error`.
    ModelError,
    /// The job's cost limit was reached before the row was graded: empty score, `not_graded`.
    NotGraded,
    /// Left out of the `sample`: empty score, `not_sampled`.
    NotSampled,
}

impl Grade {
    /// The label column's text.
    pub fn label(&self) -> &'static str {
        match self {
            Grade::Scored(_, l) => l.as_str(),
            Grade::ModelError => "model_error",
            Grade::NotGraded => "not_graded",
            Grade::NotSampled => "not_sampled",
        }
    }

    /// Appends `score,label` (never quoted).
    pub fn write(&self, out: &mut Vec<u8>) {
        if let Grade::Scored(s, _) = self {
            out.extend_from_slice(ScoreText::of(*s).as_bytes());
        }
        out.push(b',');
        out.extend_from_slice(self.label().as_bytes());
    }
}

/// Whether the row at `offset` is in a sample that keeps each row with probability `rate`
/// (0..=1), drawn from the offset alone: the same rows whatever the chunk size and however
/// often a chunk is redelivered. `salt` (the job id's hash) makes samples of jobs independent.
pub fn sampled(offset: u64, salt: u64, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    // SplitMix64's finaliser: a uniform 64-bit value from the offset.
    let mut z = offset ^ salt;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64) < rate * (1u64 << 53) as f64
}

/// What a file's first bytes say about a column's text: the model engine's cost estimate
/// scales it to the file ([`ColumnSample::scaled`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnSample {
    /// Complete records read.
    pub rows: u64,
    /// Bytes those records take (from the start of the data to the end of the last one).
    pub bytes: u64,
    /// Records whose text in the column is not empty (the rows a model would grade).
    pub texts: u64,
    /// Bytes of those texts, each counted up to `max_text` (what a request carries).
    pub text_bytes: u64,
}

impl ColumnSample {
    /// Reads the records of `data` (a file's bytes after its header; `whole`: the file's
    /// end, else the last, possibly cut, record is left out) and measures field `column`.
    pub fn of(
        data: &[u8],
        whole: bool,
        cfg: crate::parse::ParserConfig,
        column: usize,
        max_text: usize,
    ) -> ColumnSample {
        let mut s = ColumnSample::default();
        let n = data.len() as u64;
        let _ = crate::parse::for_each_record(cfg, data, |rec| {
            if !whole && rec.content_end >= n {
                return;
            }
            s.rows += 1;
            s.bytes = (rec.content_end + 1).min(n);
            let start = if column == 0 {
                0
            } else {
                rec.ends.get(column - 1).copied().unwrap_or(0)
            };
            let len = rec.ends.get(column).map_or(0, |&e| e.saturating_sub(start));
            if len > 0 {
                s.texts += 1;
                s.text_bytes += len.min(max_text) as u64;
            }
        });
        s
    }

    /// `(rows, texts, text bytes)` in `data_bytes` bytes of such records (0s without a
    /// sample; a file whose sample is the whole file gets its exact figures).
    pub fn scaled(&self, data_bytes: u64) -> (u64, u64, u64) {
        if self.bytes == 0 {
            return (0, 0, 0);
        }
        let f = data_bytes as f64 / self.bytes as f64;
        let up = |x: u64| (x as f64 * f).round() as u64;
        (up(self.rows), up(self.texts), up(self.text_bytes))
    }
}

/// Consecutive runs of rows, each at most `max_rows` rows and (unless one row alone is longer)
/// `max_bytes` bytes of text: the calls' batches.
pub fn batches(lens: &[usize], max_rows: usize, max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &n) in lens.iter().enumerate() {
        if i > start && (i - start >= max_rows.max(1) || bytes + n > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += n;
    }
    if start < lens.len() {
        out.push(start..lens.len());
    }
    out
}

/// The model's answer for a batch of `n` rows, checked against the tool's input schema
/// (`{"results": [{"row", "score", "label"}]}`): every row `0..n` exactly once, a finite score
/// in [-1, 1], a label of `positive`, `neutral` or `negative`. The grades in row order, or
/// what is wrong (logged; the batch is asked again once).
pub fn parse_results(input: &Value, n: usize) -> Result<Vec<(f64, Label)>, String> {
    let results = input
        .get("results")
        .and_then(Value::as_array)
        .ok_or("no `results` array")?;
    if results.len() != n {
        return Err(format!("{} results for {n} rows", results.len()));
    }
    let mut out: Vec<Option<(f64, Label)>> = vec![None; n];
    for (k, r) in results.iter().enumerate() {
        let row = r
            .get("row")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("results[{k}]: no integer `row`"))?;
        let slot = out
            .get_mut(row as usize)
            .ok_or_else(|| format!("results[{k}]: row {row} is not in the batch"))?;
        if slot.is_some() {
            return Err(format!("results[{k}]: row {row} answered twice"));
        }
        let score = r
            .get("score")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && (-1.0..=1.0).contains(s))
            .ok_or_else(|| format!("results[{k}]: `score` is not a number in [-1, 1]"))?;
        let label = match r.get("label").and_then(Value::as_str) {
            Some("positive") => Label::Positive,
            Some("neutral") => Label::Neutral,
            Some("negative") => Label::Negative,
            _ => {
                return Err(format!(
                    "results[{k}]: `label` is not positive, neutral or negative"
                ))
            }
        };
        *slot = Some((score, label));
    }
    Ok(out
        .into_iter()
        .map(|g| g.expect("n results, each row once"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grades_are_written_as_two_fields() {
        let mut out = Vec::new();
        for g in [
            Grade::Scored(0.5, Label::Positive),
            Grade::Scored(-0.04999, Label::Neutral),
            Grade::ModelError,
            Grade::NotGraded,
            Grade::NotSampled,
        ] {
            g.write(&mut out);
            out.push(b'|');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0.5000,positive|-0.0500,neutral|,model_error|,not_graded|,not_sampled|"
        );
    }

    #[test]
    fn batches_cut_by_rows_and_bytes() {
        assert!(batches(&[], 3, 10).is_empty());
        assert_eq!(batches(&[1; 7], 3, 100), vec![0..3, 3..6, 6..7]);
        assert_eq!(
            batches(&[4, 4, 4, 20, 1], 10, 10),
            vec![0..2, 2..3, 3..4, 4..5]
        );
        // Every row lands in exactly one batch, in order.
        let lens: Vec<usize> = (0..500).map(|i| (i * 37) % 101).collect();
        let b = batches(&lens, 25, 900);
        assert_eq!(b.first().unwrap().start, 0);
        assert_eq!(b.last().unwrap().end, 500);
        for w in b.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &b {
            assert!(r.len() <= 25);
            let bytes: usize = lens[r.clone()].iter().sum();
            assert!(bytes <= 900 || r.len() == 1, "{r:?}: {bytes}");
        }
    }

    #[test]
    fn results_are_checked_against_the_schema() {
        let ok = json!({"results": [
            {"row": 1, "score": -0.5, "label": "negative"},
            {"row": 0, "score": 0.25, "label": "positive"}
        ]});
        assert_eq!(
            parse_results(&ok, 2).unwrap(),
            vec![(0.25, Label::Positive), (-0.5, Label::Negative)]
        );
        let bad = [
            (json!({}), "no `results`"),
            (
                json!({"results": [{"row": 0, "score": 0.1, "label": "positive"}]}),
                "1 results for 2",
            ),
            (
                json!({"results": [{"row": 0, "score": 0.1, "label": "positive"}, {"row": 0, "score": 0.1, "label": "positive"}]}),
                "answered twice",
            ),
            (
                json!({"results": [{"row": 0, "score": 0.1, "label": "positive"}, {"row": 2, "score": 0.1, "label": "positive"}]}),
                "not in the batch",
            ),
            (
                json!({"results": [{"row": 0, "score": 1.5, "label": "positive"}, {"row": 1, "score": 0.1, "label": "positive"}]}),
                "[-1, 1]",
            ),
            (
                json!({"results": [{"row": 0, "score": "0.1", "label": "positive"}, {"row": 1, "score": 0.1, "label": "positive"}]}),
                "[-1, 1]",
            ),
            (
                json!({"results": [{"row": 0, "score": 0.1, "label": "great"}, {"row": 1, "score": 0.1, "label": "positive"}]}),
                "`label`",
            ),
            (
                json!({"results": [{"row": -1, "score": 0.1, "label": "positive"}, {"row": 1, "score": 0.1, "label": "positive"}]}),
                "integer `row`",
            ),
        ];
        for (v, want) in bad {
            let e = parse_results(&v, 2).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn the_sample_depends_on_the_offset_only() {
        let kept = (0..100_000u64)
            .filter(|&o| sampled(o * 61, 42, 0.1))
            .count();
        assert!((9_000..11_000).contains(&kept), "{kept}");
        assert!((0..1000u64).all(|o| sampled(o, 1, 1.0)));
        assert!(!(0..1000u64).any(|o| sampled(o, 1, 0.0)));
        let a: Vec<bool> = (0..1000u64).map(|o| sampled(o, 5, 0.3)).collect();
        let b: Vec<bool> = (0..1000u64).map(|o| sampled(o, 5, 0.3)).collect();
        assert_eq!(a, b);
    }
}
