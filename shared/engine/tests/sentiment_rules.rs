//! One table per VADER rule, with the scores vaderSentiment 3.3.2 gives (checked by hand
//! with the formulas in docs/sentiment.md, then against the package), and the module's API:
//! labels, four-digit formatting with Python's rounding, invalid UTF-8, buffer reuse.
//! The broad comparison with the package is tests/sentiment_vader.rs.

use tessera_engine::sentiment::{Analyzer, Label, ScoreText, Scores};

/// `(text, neg, neu, pos, compound)` as `polarity_scores` returns them.
type Case = (&'static str, f64, f64, f64, f64);

fn check(cases: &[Case]) {
    let mut a = Analyzer::new();
    for &(text, neg, neu, pos, compound) in cases {
        let want = Scores {
            neg,
            neu,
            pos,
            compound,
        };
        assert_eq!(a.polarity_scores_str(text), want, "{text:?}");
    }
}

#[test]
fn lexicon_words_and_normalisation() {
    // good = 1.9: 1.9 / sqrt(1.9^2 + 15) = 0.44043; pos = (1.9 + 1) / (2.9 + 0) = 1.
    check(&[
        ("good", 0.0, 0.0, 1.0, 0.4404),
        // neu 3 / (2.9 + 3) rounds to 0.508.
        ("The book was good.", 0.0, 0.508, 0.492, 0.4404),
        ("hate", 1.0, 0.0, 0.0, -0.5719),
        ("hello", 0.0, 1.0, 0.0, 0.0),
    ]);
}

#[test]
fn boosters_scale_with_distance_and_sign() {
    check(&[
        // 1.9 + 0.293 = 2.193.
        ("very good", 0.0, 0.238, 0.762, 0.4927),
        // -2.5 - 0.293: a booster follows the valence's sign.
        ("very bad", 0.791, 0.209, 0.0, -0.5849),
        ("good very", 0.0, 0.256, 0.744, 0.4404),
        ("extremely very good", 0.0, 0.366, 0.634, 0.5379),
        ("slightly good", 0.0, 0.277, 0.723, 0.3832),
        ("kinda good", 0.0, 0.277, 0.723, 0.3832),
        // Two words back: 0.293 * 0.95; three back: 0.293 * 0.9.
        ("very x good", 0.0, 0.386, 0.614, 0.4902),
        ("very x y good", 0.0, 0.487, 0.513, 0.4877),
    ]);
}

#[test]
fn all_caps_counts_only_in_mixed_case_text() {
    check(&[
        ("GOOD", 0.0, 0.0, 1.0, 0.4404),
        ("VERY GOOD", 0.0, 0.238, 0.762, 0.4927),
        // 1.9 + 0.733.
        ("GOOD day", 0.0, 0.216, 0.784, 0.5622),
        ("VERY good day", 0.0, 0.337, 0.663, 0.6028),
        ("the VERY GOOD day", 0.0, 0.392, 0.608, 0.6867),
        ("VERY GOOD day", 0.0, 0.3, 0.7, 0.6867),
        // `NO` before a lexicon word has valence 0, which the caps rule still moves by -0.733.
        ("NO good day", 0.805, 0.195, 0.0, -0.4835),
    ]);
}

#[test]
fn negation_windows() {
    // 1.9 * -0.74 = -1.406: -1.406 / sqrt(1.406^2 + 15) = -0.3412.
    check(&[
        ("not good", 0.706, 0.294, 0.0, -0.3412),
        ("not x good", 0.546, 0.454, 0.0, -0.3412),
        ("not x y good", 0.445, 0.555, 0.0, -0.3412),
        ("isn't good", 0.706, 0.294, 0.0, -0.3412),
        ("ain't good", 0.706, 0.294, 0.0, -0.3412),
        ("without good", 0.706, 0.294, 0.0, -0.3412),
        ("without x good", 0.546, 0.454, 0.0, -0.3412),
        // Any word containing n't negates.
        ("youdn't good", 0.706, 0.294, 0.0, -0.3412),
        ("n't good", 0.706, 0.294, 0.0, -0.3412),
    ]);
}

#[test]
fn never_so_this_and_without_doubt() {
    check(&[
        // 2.193 * 1.25 (and `so` adds its 0.293 as a booster first).
        ("never so good", 0.0, 0.348, 0.652, 0.5777),
        ("never this good", 0.0, 0.372, 0.628, 0.5228),
        // `so`/`this` just before the word amplifies three words back with or without `never`.
        ("never x so good", 0.0, 0.445, 0.555, 0.5777),
        ("x so good", 0.0, 0.385, 0.615, 0.4927),
        // `doubt` is a lexicon word (-1.5) that `without` negates; `good` is left alone.
        ("without doubt good", 0.0, 0.166, 0.834, 0.6136),
        ("without a doubt good", 0.0, 0.285, 0.715, 0.6136),
    ]);
}

#[test]
fn no_as_word_and_as_negation() {
    check(&[
        ("no", 1.0, 0.0, 0.0, -0.296),
        ("no good", 0.706, 0.294, 0.0, -0.3412),
        ("no x good", 0.822, 0.178, 0.0, -0.5583),
        ("no x y good", 0.31, 0.282, 0.408, 0.1779),
        ("no x or good", 0.697, 0.303, 0.0, -0.5583),
        ("no x nor good", 0.353, 0.32, 0.327, -0.0412),
        ("no no", 0.0, 0.346, 0.654, 0.2235),
    ]);
}

#[test]
fn least_kind_of_and_two_word_dampeners() {
    check(&[
        ("least good", 0.706, 0.294, 0.0, -0.3412),
        ("the least good", 0.546, 0.454, 0.0, -0.3412),
        ("at least good", 0.0, 0.408, 0.592, 0.4404),
        ("very least good", 0.0, 0.386, 0.614, 0.4902),
        // `kind` (2.4 in the lexicon) before `of` counts 0; `kind of` dampens only from three
        // words back, where the idiom check runs.
        ("kind of good", 0.0, 0.408, 0.592, 0.4404),
        ("x kind of good", 0.0, 0.535, 0.465, 0.3832),
        ("kind people", 0.0, 0.227, 0.773, 0.5267),
        ("x y z kind of good", 0.0, 0.657, 0.343, 0.3832),
        ("x y z sort of good", 0.0, 0.657, 0.343, 0.3832),
        ("x y z just enough good", 0.0, 0.657, 0.343, 0.3832),
    ]);
}

#[test]
fn but_halves_before_and_boosts_after() {
    check(&[
        // 1.9 * 0.5 - 2.5 * 1.5.
        ("good but bad", 0.617, 0.13, 0.253, -0.5859),
        ("bad but good", 0.317, 0.141, 0.542, 0.3818),
        ("good good but good", 0.0, 0.114, 0.886, 0.775),
        ("good but", 0.0, 0.339, 0.661, 0.2382),
        ("but good", 0.0, 0.206, 0.794, 0.5927),
        ("love BUT love love", 0.0, 0.066, 0.934, 0.9451),
        // list.index quirk: `fav` (2.0) is halved to 1.0; then `abilities` (1.0), looked up
        // by value, finds `fav` first and halves it again, and is itself left unscaled:
        // 0.5 + 1.0 = 1.5 -> 0.3612, where scaling by position would give 2.5 -> 0.5423.
        ("fav but abilities", 0.0, 0.222, 0.778, 0.3612),
        ("x but abilities", 0.0, 0.444, 0.556, 0.3612),
        ("fav x but abilities abilities", 0.0, 0.25, 0.75, 0.6124),
    ]);
}

#[test]
fn special_case_idioms_apply_only_three_words_in() {
    check(&[
        ("x y the shit", 0.0, 0.429, 0.571, 0.6124),
        ("x y z the shit", 0.0, 0.5, 0.5, 0.6124),
        ("we are the bomb", 0.0, 0.429, 0.571, 0.6124),
        ("x y yeah right", 0.0, 0.577, 0.423, 0.296),
        ("x y bad ass", 0.438, 0.25, 0.312, -0.25),
        ("x y z kiss of death", 0.556, 0.444, 0.0, -0.6124),
        ("x y cake to die for", 0.438, 0.562, 0.0, -0.5994),
        ("x y beating heart", 0.316, 0.211, 0.474, 0.3612),
        ("x y bus stop", 0.0, 1.0, 0.0, 0.0),
        ("it's badass", 0.0, 0.294, 0.706, 0.34),
    ]);
}

#[test]
fn exclamation_and_question_marks() {
    check(&[
        ("good!", 0.0, 0.0, 1.0, 0.4926),
        ("good!!!!!!", 0.0, 0.0, 1.0, 0.6209),
        ("good?", 0.0, 0.0, 1.0, 0.4404),
        ("good??", 0.0, 0.0, 1.0, 0.504),
        ("good???", 0.0, 0.0, 1.0, 0.533),
        ("good????", 0.0, 0.0, 1.0, 0.594),
        ("bad!!", 1.0, 0.0, 0.0, -0.6229),
        ("GOOD day!", 0.0, 0.203, 0.797, 0.6027),
        ("!!!", 0.0, 1.0, 0.0, 0.0),
    ]);
}

#[test]
fn emoji_become_their_description() {
    check(&[
        ("😀", 0.0, 0.286, 0.714, 0.3612),
        ("x😀y", 0.0, 0.444, 0.556, 0.3612),
        ("😀😀", 0.0, 0.286, 0.714, 0.6124),
        // 🔛 is `ON! arrow`: its `!` counts.
        ("good 🔛", 0.0, 0.385, 0.615, 0.4926),
        ("👍🏽", 0.0, 1.0, 0.0, 0.0),
        ("good ©", 0.0, 0.256, 0.744, 0.4404),
    ]);
}

#[test]
fn punctuation_stripping_and_emoticons() {
    check(&[
        ("(good)", 0.0, 0.0, 1.0, 0.4404),
        ("'good'", 0.0, 0.0, 1.0, 0.4404),
        (":)", 0.0, 0.0, 1.0, 0.4588),
        (":-)", 0.0, 0.0, 1.0, 0.3182),
        // Stripping `gd!` leaves two characters, so the token stays `gd!`.
        ("gd!", 0.0, 1.0, 0.0, 0.0),
        ("<3 it", 0.0, 0.256, 0.744, 0.4404),
    ]);
}

#[test]
fn unicode_whitespace_and_case() {
    check(&[
        ("GOOD ÉNORME", 0.0, 0.256, 0.744, 0.4404),
        ("ΣΟΦΟΣ GOOD", 0.0, 0.256, 0.744, 0.4404),
        ("good\u{a0}bad", 0.547, 0.0, 0.453, -0.1531),
        // Python splits on U+001C..U+001F, not on U+200B.
        ("good\u{1c}bad", 0.547, 0.0, 0.453, -0.1531),
        ("good\u{200b}bad", 0.0, 1.0, 0.0, 0.0),
        // KELVIN SIGN lower-cases to ASCII `k`.
        ("\u{212a}ind people", 0.0, 0.227, 0.773, 0.5267),
        ("", 0.0, 0.0, 0.0, 0.0),
        ("   ", 0.0, 0.0, 0.0, 0.0),
    ]);
}

#[test]
fn invalid_utf8_reads_as_replacement_characters() {
    let mut a = Analyzer::new();
    for bytes in [&b"good \xff bad"[..], b"GREAT\xc3", b"\xf0\x9f\x98 happy!"] {
        let lossy = String::from_utf8_lossy(bytes).into_owned();
        let want = a.polarity_scores_str(&lossy);
        assert_eq!(a.polarity_scores(bytes), want, "{lossy:?}");
    }
    assert_eq!(a.compound(b"not \xff good"), -0.3412);
}

#[test]
fn buffers_are_reused_without_changing_results() {
    let mut a = Analyzer::new();
    let texts = [
        "x😀y but not GOOD!!",
        "",
        "good",
        "no x or good",
        "😀😀 great",
    ];
    let first: Vec<Scores> = texts.iter().map(|t| a.polarity_scores_str(t)).collect();
    let again: Vec<Scores> = texts
        .iter()
        .rev()
        .map(|t| a.polarity_scores_str(t))
        .collect();
    assert_eq!(first, again.into_iter().rev().collect::<Vec<_>>());
}

#[test]
fn labels_use_vader_thresholds() {
    assert_eq!(Label::of(0.05), Label::Positive);
    assert_eq!(Label::of(0.0499), Label::Neutral);
    assert_eq!(Label::of(0.0), Label::Neutral);
    assert_eq!(Label::of(-0.0499), Label::Neutral);
    assert_eq!(Label::of(-0.05), Label::Negative);
    assert_eq!(Label::Positive.as_str(), "positive");
    assert_eq!(Label::Negative.to_string(), "negative");
    assert_eq!(Label::Neutral.to_string(), "neutral");
}

#[test]
fn score_text_has_four_digits_and_pythons_rounding() {
    // Expected strings are Python's `"%.4f" % round(x, 4)` (ties to even on exact halves).
    for (x, want) in [
        (0.4404, "0.4404"),
        (0.03125, "0.0312"),
        (0.09375, "0.0938"),
        (0.15625, "0.1562"),
        (-0.03125, "-0.0312"),
        (0.00005, "0.0001"),
        (0.00015, "0.0001"),
        (0.00025, "0.0003"),
        (0.12345, "0.1235"),
        (0.99995, "1.0000"),
        (-0.99995, "-1.0000"),
        (1.0, "1.0000"),
        (-1.0, "-1.0000"),
        (0.0, "0.0000"),
        (-0.0, "0.0000"),
        (0.049999999, "0.0500"),
        (-0.04995, "-0.0500"),
        (-0.5719, "-0.5719"),
    ] {
        assert_eq!(ScoreText::of(x).as_str(), want, "{x}");
    }
    assert_eq!(ScoreText::of(0.5).to_string(), "0.5000");
    assert_eq!(ScoreText::of(-0.3412).as_bytes(), b"-0.3412");
}
