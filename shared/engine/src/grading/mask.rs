//! Masking personal data inside free text before it is sent to a language model: every kind
//! the profile's detectors know (`profile::pii`: e-mail, phone, card, SSN, IBAN, IP) is
//! replaced by its kind in brackets (`[EMAIL]`, `[PHONE]`, `[CARD]`, `[SSN]`, `[IBAN]`, `[IP]`).
//!
//! The detectors judge whole values; in text the values sit among words and punctuation, and
//! some span several words (`4111 1111 1111 1111`, `(415) 555-2671`, `DE89 3704 0044 ...`).
//! So the candidates are: every window of up to [`MAX_WINDOW`] whitespace-separated words,
//! taken as is and with wrapping punctuation trimmed; and the pieces inside one word (split at
//! separators such as `:` `=` `/`), with an `@` widened to the e-mail around it. The longest
//! candidate that a detector accepts is masked, left to right. The invariant the tests check:
//! no candidate of the masked text is detected again, and a detected value never survives.
//!
//! Not here: detecting values of a column (`profile::pii`), the `mask` transforms of the rule
//! language (`rules::mask`), which replace a whole field.

use crate::profile::pii;

/// Most words one masked value may span (an IBAN in print form: 2 + up to 7 groups of 4).
pub const MAX_WINDOW: usize = 9;

/// What one call found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found {
    /// Values masked.
    pub values: u32,
}

/// `text` with every detected value replaced by its kind (see the module docs), appended to
/// `out`. Text without a digit or `@` is copied as is after one scan.
pub fn mask_pii(text: &str, out: &mut String) -> Found {
    let b = text.as_bytes();
    if !b.iter().any(|&c| c.is_ascii_digit() || c == b'@') {
        out.push_str(text);
        return Found::default();
    }
    let spans = find(text);
    let mut at = 0;
    for &(s, e, kind) in &spans {
        out.push_str(&text[at..s]);
        out.push_str(placeholder(kind));
        at = e;
    }
    out.push_str(&text[at..]);
    Found {
        values: spans.len() as u32,
    }
}

/// The detected values of `text` as `(start, end, kind bit)`, sorted, not overlapping.
pub fn find(text: &str) -> Vec<(usize, usize, u8)> {
    let b = text.as_bytes();
    let words = words(b);
    let mut cands: Vec<(usize, usize, u8)> = Vec::new();
    for i in 0..words.len() {
        let starts = cuts(b, words[i], true);
        for j in i..(i + MAX_WINDOW).min(words.len()) {
            // Words of a value are joined by single spaces (as the detectors accept them).
            if j > i && (words[j].0 - words[j - 1].1 != 1 || b[words[j].0 - 1] != b' ') {
                break;
            }
            let ends = cuts(b, words[j], false);
            for &s in &starts {
                for &e in &ends {
                    if s >= e {
                        continue;
                    }
                    for (s, e) in trims(b, s, e) {
                        if s < e {
                            let k = pii::detect(&text[s..e]);
                            if k != 0 {
                                cands.push((s, e, k));
                            }
                        }
                    }
                }
            }
        }
        let (s, e) = words[i];
        pieces(text, s, e, &mut cands);
    }
    // Longest first at each start, then left to right without overlap.
    cands.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)));
    let mut out: Vec<(usize, usize, u8)> = Vec::new();
    for c in cands {
        match out.last_mut() {
            Some(last) if c.0 < last.1 => {
                // Overlapping: keep the union masked (never leave part of a value).
                if c.1 > last.1 {
                    last.1 = c.1;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn placeholder(kind: u8) -> &'static str {
    match kind {
        pii::EMAIL => "[EMAIL]",
        pii::PHONE => "[PHONE]",
        pii::CARD => "[CARD]",
        pii::SSN => "[SSN]",
        pii::IBAN => "[IBAN]",
        pii::IP => "[IP]",
        _ => "[PII]",
    }
}

/// Byte spans of the words of `b` (split at ASCII whitespace).
fn words(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, b.len()));
    }
    out
}

const LEAD: &[u8] = b"\"'([{<";
const TRAIL: &[u8] = b"\"'.,;:!?)]}>";

/// Where a value may start (`start`) or end in the word `w`: its edges, and after (before) each
/// separator inside it (`ssn:123-45-6789`, `x=(415)`, `10.0.0.1/24`).
fn cuts(b: &[u8], w: (usize, usize), start: bool) -> Vec<usize> {
    let mut out = vec![if start { w.0 } else { w.1 }];
    for (p, &c) in b.iter().enumerate().take(w.1).skip(w.0) {
        if !(c.is_ascii_alphanumeric() || b".+-()".contains(&c) || c >= 0x80) {
            out.push(if start { p + 1 } else { p });
        }
    }
    out
}

/// `s..e` as is, with wrapping punctuation trimmed, and trimmed but for a leading `(` (a
/// phone's area code).
fn trims(b: &[u8], s: usize, e: usize) -> [(usize, usize); 3] {
    let mut e2 = e;
    while e2 > s && TRAIL.contains(&b[e2 - 1]) {
        e2 -= 1;
    }
    let mut s2 = s;
    while s2 < e2 && LEAD.contains(&b[s2]) {
        s2 += 1;
    }
    let s3 = if s2 > s && b[s2 - 1] == b'(' {
        s2 - 1
    } else {
        s2
    };
    // A trimmed `)` may close the kept `(`: give it back.
    let e3 = if s3 < s2 && e2 < e && b[e2] == b')' {
        e2 + 1
    } else {
        e2
    };
    [(s, e), (s2, e2), (s3, e3)]
}

/// Values inside one word the windows miss: hexadecimal-and-colon pieces (IPv6, whose `:` is a
/// separator to the windows) and the e-mail around each `@`.
fn pieces(text: &str, s: usize, e: usize, cands: &mut Vec<(usize, usize, u8)>) {
    let b = text.as_bytes();
    let word = &b[s..e];
    if !word.iter().any(|&c| c.is_ascii_digit() || c == b'@') {
        return;
    }
    let mut split = |keep: &dyn Fn(u8) -> bool, test: &dyn Fn(&str) -> u8| {
        let mut i = s;
        while i < e {
            if !keep(b[i]) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < e && keep(b[j]) {
                j += 1;
            }
            for (x, y) in trims(b, i, j) {
                if x < y {
                    let k = test(&text[x..y]);
                    if k != 0 {
                        cands.push((x, y, k));
                    }
                }
            }
            i = j;
        }
    };
    split(
        &|c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.',
        &|v: &str| {
            if pii::ipv6(v) || pii::ipv4(v) {
                pii::IP
            } else {
                0
            }
        },
    );
    // E-mail: widen each `@` over the characters a local part and a domain may hold.
    for (k, &c) in word.iter().enumerate() {
        if c != b'@' {
            continue;
        }
        let at = s + k;
        let mut x = at;
        while x > s && is_local(b[x - 1]) {
            x -= 1;
        }
        let mut y = at + 1;
        while y < e && (b[y].is_ascii_alphanumeric() || b[y] == b'-' || b[y] == b'.') {
            y += 1;
        }
        while y > at + 1 && (b[y - 1] == b'.' || b[y - 1] == b'-') {
            y -= 1;
        }
        // Local parts may not start with a dot; try each start from the widest.
        for x in x..at {
            if pii::email(&b[x..y]) {
                cands.push((x, y, pii::EMAIL));
                break;
            }
        }
    }
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(t: &str) -> String {
        let mut out = String::new();
        mask_pii(t, &mut out);
        out
    }

    #[test]
    fn each_kind_in_text() {
        let cases = [
            (
                "write to jane.doe@example.com, thanks",
                "write to [EMAIL], thanks",
            ),
            ("<bob@mail.example.org>", "<[EMAIL]>"),
            ("mail:x+tag@example.de.", "mail:[EMAIL]."),
            ("call (415) 555-2671 today", "call [PHONE] today"),
            ("call +1 415 555 2671!", "call [PHONE]!"),
            ("or 415-555-2671.", "or [PHONE]."),
            (
                "card 4111 1111 1111 1111 was charged",
                "card [CARD] was charged",
            ),
            ("card 4111-1111-1111-1111", "card [CARD]"),
            ("card=4111111111111111;", "card=[CARD];"),
            ("ssn 123-45-6789", "ssn [SSN]"),
            ("ssn:123-45-6789", "ssn:[SSN]"),
            ("iban DE89 3704 0044 0532 0130 00 ok", "iban [IBAN] ok"),
            ("iban GB82WEST12345698765432.", "iban [IBAN]."),
            ("from 192.168.1.20, again", "from [IP], again"),
            ("host ip=10.0.0.1/24", "host ip=[IP]/24"),
            ("v6 2001:db8::8a2e:370:7334 seen", "v6 [IP] seen"),
            ("(fe80::1)", "([IP])"),
        ];
        for (t, want) in cases {
            assert_eq!(masked(t), want, "{t}");
        }
    }

    #[test]
    fn text_without_values_is_unchanged() {
        for t in [
            "Great product, 5 stars!!! Would buy 2 more.",
            "Order 12345 arrived on 2024-03-01 at 10:30.",
            "version 1.2.3 works; 3.5 out of 5",
            "",
            "naïve café ☕ 😀",
            "1234-5678",
        ] {
            assert_eq!(masked(t), t, "{t}");
        }
    }

    /// No window or piece of the masked text is detected again, and no value found in the
    /// original survives.
    #[test]
    fn masked_text_holds_no_detected_value() {
        let vals = [
            "jane@example.com",
            "(415) 555-2671",
            "+44 20 7946 0958",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "123-45-6789",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "10.0.0.1",
            "::1",
            "2001:db8::1",
        ];
        let fillers = ["great", "(", "ok.", "id:", "x=", "\"", "12", "call"];
        let mut rng = 7u64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        for _ in 0..2000 {
            let mut t = String::new();
            let mut used = Vec::new();
            for _ in 0..6 {
                if next(2) == 0 {
                    let v = vals[next(vals.len())];
                    used.push(v);
                    t.push_str(v);
                } else {
                    t.push_str(fillers[next(fillers.len())]);
                }
                t.push(if next(4) == 0 { ',' } else { ' ' });
                if next(5) == 0 {
                    t.push(' ');
                }
            }
            let m = masked(&t);
            assert!(find(&m).is_empty(), "{t:?} -> {m:?}: {:?}", find(&m));
            for v in used {
                // Each used value either disappeared or was part of a longer masked value.
                let digits: String = v.chars().filter(char::is_ascii_alphanumeric).collect();
                let md: String = m.chars().filter(char::is_ascii_alphanumeric).collect();
                assert!(!md.contains(&digits) || !m.contains(v), "{v} in {m:?}");
                assert!(!m.contains(v), "{v} survives in {m:?} (from {t:?})");
            }
        }
    }
}
