//! The profile of derived sentiment columns (`derive: {sentiment: ...}` in the rules): per
//! score column, the label distribution, the rows not scored, min/max/mean and quantiles of the
//! score. Fed one score per clean row by whoever computed it (the chunk worker for the
//! `lexicon` engine; any engine whose scores are numbers in [-1, 1] feeds the same path), merged
//! like the rest of the profile.
//!
//! Chunking never changes the answer: the counts and min/max are exact; the mean is exact too,
//! because scores are summed in integer ten-thousandths (the 4 fraction digits the clean output
//! prints); the quantiles come from the profile's DDSketch, whose bins are counts per bucket
//! (merging adds them), and scores of 4 fraction digits in [-1, 1] fill at most ~460 buckets per
//! sign, far below the 2048 that would make the sketch collapse bins, so they are identical
//! whatever the split and within `quantile_accuracy` (relative) of the exact order statistic.
//!
//! Not here: computing scores (`crate::sentiment`, `rules`), the report's other sections.

use serde::{Deserialize, Serialize};

use super::quantiles::Quant;
use crate::sentiment::{Label, ScoreText};

/// A derived sentiment column as the rules define it (what [`ProfileState::add_sentiment`]
/// takes).
///
/// [`ProfileState::add_sentiment`]: super::ProfileState::add_sentiment
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentimentColumn {
    /// The source column whose text is scored (`review`).
    pub source: String,
    /// The score column of the clean output (`review_sentiment`): the key in `derived`.
    pub score_column: String,
    /// The label column of the clean output (`review_sentiment_label`).
    pub label_column: String,
    /// The engine that scores (`lexicon`, `model`).
    pub engine: String,
}

/// The mergeable state of one derived sentiment column.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SentimentState {
    pub(crate) column: SentimentColumn,
    positive: u64,
    negative: u64,
    neutral: u64,
    not_scored: u64,
    /// Sum of the scores in ten-thousandths (exact: |score| <= 1, so 2^63 / 10^4 rows).
    sum_e4: i64,
    /// Least and greatest score in ten-thousandths (meaningless while nothing is scored).
    min_e4: i32,
    max_e4: i32,
    quantiles: Quant,
}

/// The score as the clean output prints it (`ScoreText`, so the rounding is the writer's), in
/// ten-thousandths; scores outside [-1, 1] are clamped.
fn e4(score: f64) -> i32 {
    let t = ScoreText::of(score.clamp(-1.0, 1.0));
    let (neg, digits) = match t.as_str().as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let v = digits
        .iter()
        .filter(|b| b.is_ascii_digit())
        .fold(0i32, |acc, b| acc * 10 + i32::from(b - b'0'));
    if neg {
        -v
    } else {
        v
    }
}

impl SentimentState {
    pub(crate) fn new(column: SentimentColumn, quantile_accuracy: f64) -> Self {
        SentimentState {
            column,
            positive: 0,
            negative: 0,
            neutral: 0,
            not_scored: 0,
            sum_e4: 0,
            min_e4: i32::MAX,
            max_e4: i32::MIN,
            quantiles: Quant::new(quantile_accuracy),
        }
    }

    pub(crate) fn report_scored(&self) -> u64 {
        self.scored()
    }

    fn scored(&self) -> u64 {
        self.positive + self.negative + self.neutral
    }

    /// One clean row: its score, or `None` when the row was not scored (empty text; for a
    /// model, a row not graded). A score that is not a finite number counts as not scored.
    #[inline]
    pub(crate) fn observe(&mut self, score: Option<f64>) {
        // The label of the score itself, as the writer labels it.
        self.observe_labelled(score.map(|s| (s, Label::of(s))));
    }

    /// One clean row's score and label as written (a model's label is its own answer).
    #[inline]
    pub(crate) fn observe_labelled(&mut self, graded: Option<(f64, Label)>) {
        let Some((s, label)) = graded.filter(|(s, _)| s.is_finite()) else {
            self.not_scored += 1;
            return;
        };
        let v = e4(s);
        let x = f64::from(v) / 10_000.0;
        match label {
            Label::Positive => self.positive += 1,
            Label::Negative => self.negative += 1,
            Label::Neutral => self.neutral += 1,
        }
        self.sum_e4 += i64::from(v);
        self.min_e4 = self.min_e4.min(v);
        self.max_e4 = self.max_e4.max(v);
        self.quantiles.add(x);
    }

    pub(crate) fn merge(&mut self, o: &SentimentState) {
        self.positive += o.positive;
        self.negative += o.negative;
        self.neutral += o.neutral;
        self.not_scored += o.not_scored;
        self.sum_e4 += o.sum_e4;
        self.min_e4 = self.min_e4.min(o.min_e4);
        self.max_e4 = self.max_e4.max(o.max_e4);
        self.quantiles.merge(&o.quantiles);
    }

    pub(crate) fn report(&self) -> DerivedReport {
        let scored = self.scored();
        let sketch = self.quantiles.flushed();
        // A bucket's representative may lie past the extreme scores (by < 1 %); the true
        // quantile never does, so clamping only brings the answer closer.
        let (lo, hi) = (
            f64::from(self.min_e4) / 10_000.0,
            f64::from(self.max_e4) / 10_000.0,
        );
        let q = |p: f64| {
            let v = sketch.quantile(p).ok().flatten().unwrap_or(0.0);
            if lo <= hi {
                v.clamp(lo, hi)
            } else {
                v
            }
        };
        let any = scored > 0;
        DerivedReport {
            kind: DerivedKind::Sentiment,
            source: self.column.source.clone(),
            engine: self.column.engine.clone(),
            label_column: self.column.label_column.clone(),
            rows: scored + self.not_scored,
            scored,
            not_scored: self.not_scored,
            labels: LabelCounts {
                positive: self.positive,
                negative: self.negative,
                neutral: self.neutral,
            },
            min: any.then(|| f64::from(self.min_e4) / 10_000.0),
            max: any.then(|| f64::from(self.max_e4) / 10_000.0),
            mean: any.then(|| self.sum_e4 as f64 / scored as f64 / 10_000.0),
            quantiles: any.then(|| ScoreQuantiles {
                p10: q(0.10),
                p25: q(0.25),
                p50: q(0.50),
                p75: q(0.75),
                p90: q(0.90),
            }),
        }
    }
}

/// What a derived column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DerivedKind {
    /// A sentiment score in [-1, 1] and its label.
    Sentiment,
}

/// Rows per label (`positive` >= 0.05, `negative` <= -0.05, else `neutral`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCounts {
    pub positive: u64,
    pub negative: u64,
    pub neutral: u64,
}

/// Score quantiles (DDSketch, relative accuracy `quantile_accuracy`; 0 exactly for a score of 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreQuantiles {
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
}

/// One entry of `profile.json`'s `derived` section, keyed by the score column's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedReport {
    pub kind: DerivedKind,
    /// The source column scored.
    pub source: String,
    /// `lexicon` or `model`.
    pub engine: String,
    /// The label column of the clean output.
    pub label_column: String,
    /// Clean rows (`scored + not_scored`).
    pub rows: u64,
    /// Rows with a score (= the sum of `labels`).
    pub scored: u64,
    /// Rows without one (empty text: score and label are empty in the clean output).
    pub not_scored: u64,
    pub labels: LabelCounts,
    /// Over scored rows; `null` when none was scored.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub quantiles: Option<ScoreQuantiles>,
}
