//! Writing CSV fields and rows in the engine's output format (`,` delimiter, quoting only the
//! fields that contain `,` `"` CR or LF): shared by the chunk's clean and rejected outputs, the
//! rules' transformed rows and the rejected-part rebaser.
//!
//! Not here: parsing (see `parse`), deciding what a row holds (see `chunk` and `rules`).

use memchr::{memchr, memchr3};

/// True when `f` contains `,` `"` CR or LF (so that it must be quoted). Fields are mostly short:
/// up to 64 bytes they are scanned 8 bytes at a time inline (SWAR, the last word overlapping),
/// which costs a fraction of two `memchr` calls and their setup; longer ones use `memchr`.
#[inline]
fn needs_quotes(f: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn has_zero(v: u64) -> u64 {
        v.wrapping_sub(LO) & !v & HI
    }
    #[inline(always)]
    fn special(w: u64) -> bool {
        (has_zero(w ^ (LO * u64::from(b',')))
            | has_zero(w ^ (LO * u64::from(b'"')))
            | has_zero(w ^ (LO * u64::from(b'\n')))
            | has_zero(w ^ (LO * u64::from(b'\r'))))
            != 0
    }
    let n = f.len();
    if n > 64 {
        return memchr3(b',', b'"', b'\n', f).is_some() || memchr(b'\r', f).is_some();
    }
    if n < 8 {
        return f.iter().any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    }
    let word = |i: usize| u64::from_le_bytes(f[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 < n {
        if special(word(i)) {
            return true;
        }
        i += 8;
    }
    special(word(n - 8))
}

/// Writes one field as CSV (`,` delimiter), quoting only when needed.
pub fn write_field(out: &mut Vec<u8>, f: &[u8]) {
    if !needs_quotes(f) {
        out.extend_from_slice(f);
        return;
    }
    out.push(b'"');
    let mut rest = f;
    while let Some(i) = memchr(b'"', rest) {
        out.extend_from_slice(&rest[..=i]);
        out.push(b'"');
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Writes a record's fields as one CSV row without terminator. A record of one empty field is
/// written `""` so that it does not read back as a blank line.
pub fn write_fields(out: &mut Vec<u8>, text: &[u8], ends: &[usize]) {
    if ends.len() == 1 && ends[0] == 0 {
        out.extend_from_slice(b"\"\"");
        return;
    }
    let mut start = 0;
    for (i, &e) in ends.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_field(out, &text[start..e]);
        start = e;
    }
}
