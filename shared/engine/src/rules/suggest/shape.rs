//! The shape of ID-like text values (`ORD-004211`, UUIDs, `AB12-77`) as an anchored regular
//! expression: runs of letters and digits ("segments") between separator characters, each
//! segment a character class (digits, upper, lower, hexadecimal, or a mix) with the lengths
//! seen, widened so the whole value can reach the column's exact shortest and longest lengths.
//!
//! Only when every observed value has the same separators in the same order; otherwise
//! `None`. The observed values are a sample, so the pattern is a candidate, not a proof.
//!
//! Not here: deciding which columns are ID-like (the caller).

/// Characters seen in one segment across values.
#[derive(Debug, Clone, Copy, Default)]
struct Seg {
    digit: bool,
    upper: bool,
    lower: bool,
    /// A letter beyond `f`/`F` was seen (so not hexadecimal).
    non_hex: bool,
    min: usize,
    max: usize,
}

impl Seg {
    fn class(&self) -> &'static str {
        let hex = self.digit && !self.non_hex;
        match (self.digit, self.upper, self.lower) {
            (true, false, false) => "[0-9]",
            (false, true, false) => "[A-Z]",
            (false, false, true) => "[a-z]",
            (false, true, true) => "[A-Za-z]",
            (true, false, true) if hex => "[0-9a-f]",
            (true, true, false) if hex => "[0-9A-F]",
            (true, true, true) if hex => "[0-9A-Fa-f]",
            (true, false, true) => "[0-9a-z]",
            (true, true, false) => "[0-9A-Z]",
            _ => "[0-9A-Za-z]",
        }
    }
}

/// A value split into its separators (in order) and segments.
fn split(v: &str) -> Option<(Vec<u8>, Vec<Seg>)> {
    if v.is_empty() || !v.is_ascii() {
        return None;
    }
    let mut seps = Vec::new();
    let mut segs = Vec::new();
    let mut cur: Option<Seg> = None;
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() {
            let s = cur.get_or_insert_with(Seg::default);
            s.min += 1;
            s.digit |= b.is_ascii_digit();
            s.upper |= b.is_ascii_uppercase();
            s.lower |= b.is_ascii_lowercase();
            s.non_hex |= b.is_ascii_alphabetic() && !matches!(b.to_ascii_lowercase(), b'a'..=b'f');
        } else {
            // A separator closes the segment; an empty segment marks two separators in a row.
            let mut s = cur.take().unwrap_or_default();
            s.max = s.min;
            segs.push(s);
            seps.push(b);
        }
    }
    let mut s = cur.unwrap_or_default();
    s.max = s.min;
    segs.push(s);
    Some((seps, segs))
}

/// The anchored pattern shared by all `values`, whose lengths in the whole column run from
/// `min_len` to `max_len` characters; `None` without at least 10 values or one shape.
pub(super) fn infer(values: &[&str], min_len: u64, max_len: u64) -> Option<String> {
    if values.len() < 10 {
        return None;
    }
    let (seps, mut segs) = split(values[0])?;
    let (mut lo_total, mut hi_total) = (values[0].len(), values[0].len());
    for v in &values[1..] {
        let (s2, g2) = split(v)?;
        if s2 != seps {
            return None;
        }
        for (a, b) in segs.iter_mut().zip(&g2) {
            a.digit |= b.digit;
            a.upper |= b.upper;
            a.lower |= b.lower;
            a.non_hex |= b.non_hex;
            a.min = a.min.min(b.min);
            a.max = a.max.max(b.max);
        }
        lo_total = lo_total.min(v.len());
        hi_total = hi_total.max(v.len());
    }
    if !segs.iter().any(|s| s.digit) {
        return None;
    }
    // Lengths the sample did not reach: let every varying segment take up the difference.
    let grow = (max_len as usize).saturating_sub(hi_total);
    let shrink = lo_total.saturating_sub(min_len as usize);
    let mut out = String::from("^");
    for (i, s) in segs.iter().enumerate() {
        let (mut a, mut b) = (s.min, s.max);
        // Segments that varied, and digit runs (counters), may take up the difference.
        if a != b || s.digit {
            a = a.saturating_sub(shrink);
            b += grow;
        }
        if b > 0 {
            out.push_str(s.class());
            if a == b {
                out.push_str(&format!("{{{a}}}"));
            } else {
                out.push_str(&format!("{{{a},{b}}}"));
            }
        }
        if let Some(&sep) = seps.get(i) {
            out.push_str(&regex::escape(&(sep as char).to_string()));
        }
    }
    out.push('$');
    Some(out)
}
