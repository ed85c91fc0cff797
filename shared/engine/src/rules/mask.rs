//! Masking of personal data: partial masks and keyed tokens (HMAC-SHA256). The token key comes
//! from the caller's configuration, never from a rule document.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::doc::TokenEncoding;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `msg` under `key` (the primitive, exposed for known-answer tests).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// Byte equality without a `memcmp` call for short values (a call per compare was visible in
/// profiles of the token cache and `one_of`): two overlapping word loads cover 4..=16 bytes.
#[inline]
pub(crate) fn eq_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w8 = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let w4 = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    match n {
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        4..=7 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// HMAC-SHA256 (RFC 2104) reduced to its two compressions for short messages: the states after
/// the key's inner and outer pad blocks are computed once; a message of at most 55 bytes then
/// fits, with its padding, in one block, and so does the inner digest. Two calls of the
/// `sha2` compression function (SHA-NI where the CPU has it) per token, without the generic
/// `Mac` buffering, cloning and finalisation. Equal to `hmac_sha256` (tested).
#[derive(Clone)]
struct PadStates {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// The longest message [`PadStates::mac_short`] takes (64 - 1 byte `0x80` - 8 length bytes).
const SHORT_MAX: usize = 55;

impl PadStates {
    fn new(key: &[u8]) -> Self {
        use sha2::Digest as _;
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let pad = |x: u8| {
            let mut b = [0u8; 64];
            for (o, &kb) in b.iter_mut().zip(&k) {
                *o = kb ^ x;
            }
            let mut st = SHA256_IV;
            compress(&mut st, &b);
            st
        };
        PadStates {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC of `msg` (at most [`SHORT_MAX`] bytes).
    fn mac_short(&self, msg: &[u8]) -> [u8; 32] {
        debug_assert!(msg.len() <= SHORT_MAX);
        let mut block = [0u8; 64];
        block[..msg.len()].copy_from_slice(msg);
        block[msg.len()] = 0x80;
        block[56..].copy_from_slice(&((64 + msg.len() as u64) * 8).to_be_bytes());
        let mut st = self.inner;
        compress(&mut st, &block);
        let mut block = [0u8; 64];
        for (o, w) in block.chunks_exact_mut(4).zip(&st) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        block[32] = 0x80;
        block[56..].copy_from_slice(&((64 + 32u64) * 8).to_be_bytes());
        let mut st = self.outer;
        compress(&mut st, &block);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(&st) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// One SHA-256 compression. `sha2` 0.10's block type is generic-array 0.14's, which marks
/// itself deprecated in favour of 1.x; there is no other way to name it in this `sha2`.
#[inline]
#[allow(deprecated)]
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let b = sha2::digest::generic_array::GenericArray::from_slice(block);
    sha2::compress256(state, std::slice::from_ref(b));
}

/// A keyed tokeniser: the key's inner and outer pads are hashed once; each token starts from
/// those states. A small direct-mapped cache skips the hash for repeated values
/// (low-cardinality columns).
#[derive(Clone)]
pub struct Tokenizer {
    mac: HmacSha256,
    pads: PadStates,
    encoding: TokenEncoding,
    len: usize,
    cache: Vec<(u64, String, String)>,
    /// Cache use: lookups and hits in the current trial window, and how many tokens to compute
    /// without the cache (on a column of unique values every lookup is a miss into a 200 KiB
    /// table, which cost more than the two compressions it was meant to save).
    trial: (u32, u32),
    bypass: u32,
}

/// Lookups per trial of the token cache, and tokens computed without it after a trial in
/// which fewer than a quarter hit.
const TRIAL: u32 = 4096;
const BYPASS: u32 = 1 << 16;

const CACHE_SLOTS: usize = 4096;

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("encoding", &self.encoding)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// A tokeniser for `key` writing `len` characters of the encoded digest.
    pub fn new(key: &[u8], encoding: TokenEncoding, len: usize) -> Self {
        let max = match encoding {
            TokenEncoding::Hex => 64,
            TokenEncoding::Base64url => 43,
        };
        Tokenizer {
            mac: HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"),
            pads: PadStates::new(key),
            encoding,
            len: len.clamp(1, max),
            cache: Vec::new(),
            trial: (0, 0),
            bypass: 0,
        }
    }

    /// Writes the token of `value` into `out`.
    pub fn token(&mut self, value: &str, out: &mut String) {
        if self.bypass > 0 {
            self.bypass -= 1;
            self.compute(value, out);
            return;
        }
        let h = xxhash_rust::xxh3::xxh3_64(value.as_bytes());
        if self.cache.is_empty() {
            self.cache = vec![(0, String::new(), String::new()); CACHE_SLOTS];
        }
        self.trial.0 += 1;
        if self.trial.0 == TRIAL {
            if self.trial.1 < TRIAL / 4 {
                self.bypass = BYPASS;
            }
            self.trial = (0, 0);
        }
        let slot = &mut self.cache[(h as usize) % CACHE_SLOTS];
        if slot.0 == h && eq_short(slot.1.as_bytes(), value.as_bytes()) && !slot.2.is_empty() {
            self.trial.1 += 1;
            out.push_str(&slot.2);
            return;
        }
        let start = out.len();
        self.compute(value, out);
        let slot = &mut self.cache[(h as usize) % CACHE_SLOTS];
        slot.0 = h;
        slot.1.clear();
        slot.1.push_str(value);
        slot.2.clear();
        slot.2.push_str(&out[start..]);
    }

    /// The token of `value`, without the cache.
    fn compute(&self, value: &str, out: &mut String) {
        let digest: [u8; 32] = if value.len() <= SHORT_MAX {
            self.pads.mac_short(value.as_bytes())
        } else {
            let mut m = self.mac.clone();
            m.update(value.as_bytes());
            m.finalize().into_bytes().into()
        };
        // Only the digest bytes the kept characters come from are encoded: a hex character
        // per half byte, four base64 characters per three bytes (so a prefix of whole groups
        // encodes to a prefix of the full encoding).
        let start = out.len();
        match self.encoding {
            TokenEncoding::Hex => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for &b in &digest[..self.len.div_ceil(2)] {
                    out.push(HEX[(b >> 4) as usize] as char);
                    out.push(HEX[(b & 15) as usize] as char);
                }
            }
            TokenEncoding::Base64url => {
                let bytes = (self.len.div_ceil(4) * 3).min(digest.len());
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode_string(&digest[..bytes], out)
            }
        }
        out.truncate(start + self.len);
    }
}

/// Appends `n` `*` (whole slices instead of one `push` per character).
fn push_stars(out: &mut String, mut n: usize) {
    const STARS: &str = "********************************";
    while n > 0 {
        let k = n.min(STARS.len());
        out.push_str(&STARS[..k]);
        n -= k;
    }
}

/// Partial mask: e-mail addresses keep their first character and domain (`j***@example.com`),
/// anything else keeps its last 4 characters (`****1234`); 4 characters or fewer: all masked.
pub fn partial(value: &str, out: &mut String) {
    let b = value.as_bytes();
    // Short values (amounts, ids) are scanned inline; a memrchr call costs more than the scan.
    let at = if b.len() <= 32 {
        b.iter().rposition(|&c| c == b'@')
    } else {
        memchr::memrchr(b'@', b)
    };
    if let Some(at) = at {
        let (local, domain) = value.split_at(at);
        if let Some(first) = local.chars().next() {
            if !domain[1..].is_empty() {
                out.push(first);
                out.push_str("***");
                out.push_str(domain);
                return;
            }
        }
    }
    if value.is_ascii() {
        let n = value.len();
        let stars = if n <= 4 { n } else { n - 4 };
        push_stars(out, stars);
        out.push_str(&value[stars..]);
        return;
    }
    let n = value.chars().count();
    if n <= 4 {
        out.extend(std::iter::repeat_n('*', n));
        return;
    }
    out.extend(std::iter::repeat_n('*', n - 4));
    let tail = value
        .char_indices()
        .nth(n - 4)
        .map_or(value.len(), |(i, _)| i);
    out.push_str(&value[tail..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rfc4231_known_answers() {
        // Test case 1.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block size.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn eq_short_sees_every_byte() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(eq_short(&a, &a.clone()));
            assert!(!eq_short(&a, &a[..n.saturating_sub(1)]) || n == 0);
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!eq_short(&a, &b), "len {n} byte {i}");
            }
        }
    }

    #[test]
    fn short_path_equals_hmac() {
        for klen in [0usize, 1, 9, 32, 63, 64, 65, 131] {
            let key: Vec<u8> = (0..klen).map(|i| (i * 7 + 3) as u8).collect();
            let pads = PadStates::new(&key);
            for mlen in 0..=SHORT_MAX {
                let msg: Vec<u8> = (0..mlen).map(|i| (i * 13 + klen) as u8).collect();
                assert_eq!(
                    pads.mac_short(&msg),
                    hmac_sha256(&key, &msg),
                    "{klen} {mlen}"
                );
            }
        }
    }

    #[test]
    fn cache_bypass_gives_the_same_tokens() {
        let mut t = Tokenizer::new(b"k", TokenEncoding::Base64url, 16);
        let (mut a, mut b) = (String::new(), String::new());
        // Unique values switch the cache off; repeated ones afterwards must still be right.
        for i in 0..3 * (TRIAL + BYPASS) as usize / 2 {
            let v = if i % 3 == 0 {
                "same".to_string()
            } else {
                i.to_string()
            };
            a.clear();
            b.clear();
            t.token(&v, &mut a);
            b.push_str(&Tokenizer::new(b"k", TokenEncoding::Base64url, 16).hmac_for_test(&v));
            assert_eq!(a, b, "{i}");
        }
    }

    impl Tokenizer {
        fn hmac_for_test(&self, v: &str) -> String {
            let d = hmac_sha256(b"k", v.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)[..self.len].to_string()
        }
    }

    #[test]
    fn every_token_length_is_a_prefix_of_the_full_encoding() {
        let msg = "a value of some length, for the long path too: 0123456789abcdefghij";
        for m in [&msg[..5], msg] {
            for (enc, max) in [(TokenEncoding::Hex, 64), (TokenEncoding::Base64url, 43)] {
                let mut full = String::new();
                Tokenizer::new(b"k", enc, max).token(m, &mut full);
                for len in 1..=max {
                    let mut t = String::new();
                    Tokenizer::new(b"k", enc, len).token(m, &mut t);
                    assert_eq!(t, full[..len], "{enc:?} {len}");
                }
            }
        }
    }

    #[test]
    fn tokens_are_stable_keyed_and_truncated() {
        let mut t = Tokenizer::new(b"Jefe", TokenEncoding::Hex, 64);
        let mut a = String::new();
        t.token("what do ya want for nothing?", &mut a);
        assert_eq!(
            a,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut b = String::new();
        t.token("what do ya want for nothing?", &mut b); // from the cache
        assert_eq!(a, b);
        let mut t16 = Tokenizer::new(b"Jefe", TokenEncoding::Hex, 16);
        let mut c = String::new();
        t16.token("what do ya want for nothing?", &mut c);
        assert_eq!(c, &a[..16]);
        let mut other = Tokenizer::new(b"other key", TokenEncoding::Hex, 16);
        let mut d = String::new();
        other.token("what do ya want for nothing?", &mut d);
        assert_ne!(c, d);
        let mut t64 = Tokenizer::new(b"Jefe", TokenEncoding::Base64url, 100);
        let mut e = String::new();
        t64.token("what do ya want for nothing?", &mut e);
        assert_eq!(e, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
    }

    #[test]
    fn partial_masks() {
        let m = |s: &str| {
            let mut o = String::new();
            partial(s, &mut o);
            o
        };
        assert_eq!(m("jane.doe@example.com"), "j***@example.com");
        assert_eq!(m("4111111111111111"), "************1111");
        assert_eq!(m("1234"), "****");
        assert_eq!(m("Zürich-9"), "****ch-9");
        assert_eq!(m("@x"), "**");
        assert_eq!(m("a@"), "**");
    }
}
