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

/// A keyed tokeniser: the key's inner and outer pads are hashed once; each token clones that
/// state. A small direct-mapped cache skips the hash for repeated values (low-cardinality
/// columns).
#[derive(Clone)]
pub struct Tokenizer {
    mac: HmacSha256,
    encoding: TokenEncoding,
    len: usize,
    cache: Vec<(u64, String, String)>,
}

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
            encoding,
            len: len.clamp(1, max),
            cache: Vec::new(),
        }
    }

    /// Writes the token of `value` into `out`.
    pub fn token(&mut self, value: &str, out: &mut String) {
        let h = xxhash_rust::xxh3::xxh3_64(value.as_bytes());
        if self.cache.is_empty() {
            self.cache = vec![(0, String::new(), String::new()); CACHE_SLOTS];
        }
        let slot = &mut self.cache[(h as usize) % CACHE_SLOTS];
        if slot.0 == h && slot.1 == value && !slot.2.is_empty() {
            out.push_str(&slot.2);
            return;
        }
        let mut m = self.mac.clone();
        m.update(value.as_bytes());
        let digest = m.finalize().into_bytes();
        let start = out.len();
        match self.encoding {
            TokenEncoding::Hex => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for &b in digest.iter() {
                    out.push(HEX[(b >> 4) as usize] as char);
                    out.push(HEX[(b & 15) as usize] as char);
                }
            }
            TokenEncoding::Base64url => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(digest, out)
            }
        }
        out.truncate(start + self.len);
        slot.0 = h;
        slot.1.clear();
        slot.1.push_str(value);
        slot.2.clear();
        slot.2.push_str(&out[start..]);
    }
}

/// Partial mask: e-mail addresses keep their first character and domain (`j***@example.com`),
/// anything else keeps its last 4 characters (`****1234`); 4 characters or fewer: all masked.
pub fn partial(value: &str, out: &mut String) {
    if let Some(at) = memchr::memrchr(b'@', value.as_bytes()) {
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
        out.extend(std::iter::repeat_n('*', stars));
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
