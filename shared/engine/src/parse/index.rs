//! Structural indexing of 64 input bytes at a time: bitmaps of the quote, delimiter and
//! line-break (CR or LF) bytes of one block, and the prefix XOR that turns the quote bitmap into
//! the in-quotes mask (bit p = parity of the quote bytes in the block up to and including p).
//! That parity is exactly the parser's definition of "inside quotes" (see the `parse` module
//! docs and `split`), so a block's bitmaps decide every field and record boundary in it without
//! looking at bytes one by one.
//!
//! Kernels: a portable one (u64 SWAR, every target), SSE2 (baseline on x86_64), AVX2 +
//! PCLMULQDQ (x86_64, checked at run time with `is_x86_feature_detected!`) and NEON + PMULL
//! (arm64, as deployed; PMULL checked at run time with `is_aarch64_feature_detected!`). They
//! compute the same bitmaps; `tests/parse_kernels.rs` and the `parse_kernels` fuzz target check
//! that the parser gives identical results with each of them and with none.
//!
//! Not here: what the bitmaps mean for records (that is `parse::fast`).

/// Which block classifier the parser's fast path uses. `Scalar` is the byte state machine alone
/// (no structural index): the reference the others are tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// No structural index: the byte-at-a-time state machine (with its SWAR field scan).
    Scalar,
    /// Structural index from u64 SWAR compares and the shift-XOR prefix cascade (any CPU).
    Portable,
    /// Structural index from SSE2 compares (x86_64 baseline) and the shift-XOR cascade.
    #[cfg(target_arch = "x86_64")]
    Sse2,
    /// Structural index from AVX2 compares and a carry-less multiply (PCLMULQDQ) prefix XOR.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Structural index from NEON compares and a carry-less multiply (PMULL) prefix XOR.
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Kernel {
    /// The fastest kernel this CPU supports (checked at run time, once per call site use).
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if Kernel::Avx2.available() {
                return Kernel::Avx2;
            }
            Kernel::Sse2
        }
        #[cfg(target_arch = "aarch64")]
        {
            if Kernel::Neon.available() {
                return Kernel::Neon;
            }
            Kernel::Portable
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            Kernel::Portable
        }
    }

    /// True when this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Scalar | Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("pclmulqdq")
            }
            // NEON is in the arm64 baseline; PMULL comes with the AES extension (every
            // Graviton has it, but it is optional in the architecture).
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => std::arch::is_aarch64_feature_detected!("aes"),
        }
    }

    /// Every kernel this CPU can run, `Scalar` first.
    pub fn all_available() -> Vec<Kernel> {
        let all = [
            Kernel::Scalar,
            Kernel::Portable,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2,
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon,
        ];
        all.into_iter().filter(|k| k.available()).collect()
    }
}

/// The bitmaps of one 64-byte block: bit j describes byte j of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    /// Quote bytes.
    pub q: u64,
    /// Delimiter, CR or LF bytes (field and record ends, wherever they are).
    pub sep: u64,
    /// CR or LF bytes, or more (a subset of `sep`): only used to skip counting line breaks in
    /// quoted fields that have none, so a kernel may report all of `sep` here.
    pub nl: u64,
}

/// The dialect bytes a classifier compares against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bytes {
    pub delimiter: u8,
    pub quote: u8,
}

/// One way of computing a block's bitmaps and the prefix XOR.
pub(crate) trait Classify {
    /// The bitmaps of the 64 bytes at `p`.
    ///
    /// # Safety
    /// `p..p + 64` must be readable, and the CPU must support the kernel.
    unsafe fn block(p: *const u8, b: Bytes) -> Block;

    /// Bit p of the result is the XOR of bits 0..=p of `x`.
    ///
    /// # Safety
    /// The CPU must support the kernel.
    unsafe fn prefix_xor(x: u64) -> u64;
}

/// Bit p = XOR of bits 0..=p, by the shift-XOR cascade (six shifts; any CPU).
#[inline(always)]
pub(crate) fn prefix_xor_cascade(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The u64 SWAR kernel.
pub(crate) struct Portable;

const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HI: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// 0x80 in every byte of `w` equal to the byte splatted in `s`, 0 elsewhere. Exact for every
/// byte (no borrow between bytes, unlike the `v - 0x01.. & !v` test, whose higher flags can be
/// false positives).
#[inline(always)]
fn eq_bytes(w: u64, s: u64) -> u64 {
    let x = w ^ s;
    !(((x & LO7) + LO7) | x) & HI
}

/// Packs the 0x80-per-byte flags of `m` into 8 bits (byte j to bit j), as `movemask` does.
#[inline(always)]
pub(crate) fn pack(m: u64) -> u64 {
    // Flag of byte j at bit 8j; the multiplier has 2^(7-i) in byte i, so byte j's flag lands at
    // bit 56 + j when i = 7 - j; the other products land on distinct bits below 56 (no
    // carries) or overflow away.
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

impl Classify for Portable {
    #[inline(always)]
    unsafe fn block(p: *const u8, b: Bytes) -> Block {
        let (sd, sq) = (ONES * u64::from(b.delimiter), ONES * u64::from(b.quote));
        let (scr, slf) = (ONES * u64::from(b'\r'), ONES * u64::from(b'\n'));
        let mut out = Block {
            q: 0,
            sep: 0,
            nl: 0,
        };
        for j in 0..8 {
            // SAFETY: the caller guarantees 64 readable bytes at `p`; j * 8 + 8 <= 64.
            let w = u64::from_le(unsafe { p.add(j * 8).cast::<u64>().read_unaligned() });
            out.q |= pack(eq_bytes(w, sq)) << (j * 8);
            let sep = eq_bytes(w, sd) | eq_bytes(w, scr) | eq_bytes(w, slf);
            out.sep |= pack(sep) << (j * 8);
        }
        // One multiply less per word: `nl` may be a superset (see `Block`).
        out.nl = out.sep;
        out
    }

    #[inline(always)]
    unsafe fn prefix_xor(x: u64) -> u64 {
        prefix_xor_cascade(x)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Sse2};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{prefix_xor_cascade, Block, Bytes, Classify};
    use std::arch::x86_64::*;

    /// The SSE2 kernel (x86_64 baseline: no run-time check needed).
    pub(crate) struct Sse2;

    impl Classify for Sse2 {
        #[inline(always)]
        unsafe fn block(p: *const u8, b: Bytes) -> Block {
            // SAFETY (whole body): SSE2 is part of the x86_64 baseline; the caller guarantees 64
            // readable bytes at `p`, and `loadu` has no alignment requirement.
            unsafe {
                let sd = _mm_set1_epi8(b.delimiter as i8);
                let sq = _mm_set1_epi8(b.quote as i8);
                let scr = _mm_set1_epi8(b'\r' as i8);
                let slf = _mm_set1_epi8(b'\n' as i8);
                let mut out = Block {
                    q: 0,
                    sep: 0,
                    nl: 0,
                };
                for j in 0..4 {
                    let v = _mm_loadu_si128(p.add(j * 16).cast());
                    let q = _mm_movemask_epi8(_mm_cmpeq_epi8(v, sq)) as u16;
                    let nl = _mm_or_si128(_mm_cmpeq_epi8(v, scr), _mm_cmpeq_epi8(v, slf));
                    let sep = _mm_movemask_epi8(_mm_or_si128(nl, _mm_cmpeq_epi8(v, sd))) as u16;
                    let nl = _mm_movemask_epi8(nl) as u16;
                    out.q |= u64::from(q) << (j * 16);
                    out.sep |= u64::from(sep) << (j * 16);
                    out.nl |= u64::from(nl) << (j * 16);
                }
                out
            }
        }

        #[inline(always)]
        unsafe fn prefix_xor(x: u64) -> u64 {
            prefix_xor_cascade(x)
        }
    }

    /// The AVX2 + PCLMULQDQ kernel (selected only when the CPU has both).
    pub(crate) struct Avx2;

    impl Classify for Avx2 {
        #[inline(always)]
        unsafe fn block(p: *const u8, b: Bytes) -> Block {
            // SAFETY (whole body): the caller guarantees AVX2 (the kernel is chosen only after
            // `is_x86_feature_detected!`) and 64 readable bytes at `p`; `loadu` is unaligned.
            unsafe {
                let sd = _mm256_set1_epi8(b.delimiter as i8);
                let sq = _mm256_set1_epi8(b.quote as i8);
                let scr = _mm256_set1_epi8(b'\r' as i8);
                let slf = _mm256_set1_epi8(b'\n' as i8);
                // No closures here: a closure is compiled without the caller's target
                // features, and passing `__m256i` through one scalarises it.
                let lo = _mm256_loadu_si256(p.cast());
                let hi = _mm256_loadu_si256(p.add(32).cast());
                let q_lo = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, sq)) as u32;
                let q_hi = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, sq)) as u32;
                let nl_lo = _mm256_or_si256(_mm256_cmpeq_epi8(lo, scr), _mm256_cmpeq_epi8(lo, slf));
                let nl_hi = _mm256_or_si256(_mm256_cmpeq_epi8(hi, scr), _mm256_cmpeq_epi8(hi, slf));
                let s_lo = _mm256_or_si256(nl_lo, _mm256_cmpeq_epi8(lo, sd));
                let s_hi = _mm256_or_si256(nl_hi, _mm256_cmpeq_epi8(hi, sd));
                let s_lo = _mm256_movemask_epi8(s_lo) as u32;
                let s_hi = _mm256_movemask_epi8(s_hi) as u32;
                let nl_lo = _mm256_movemask_epi8(nl_lo) as u32;
                let nl_hi = _mm256_movemask_epi8(nl_hi) as u32;
                Block {
                    q: u64::from(q_lo) | u64::from(q_hi) << 32,
                    sep: u64::from(s_lo) | u64::from(s_hi) << 32,
                    nl: u64::from(nl_lo) | u64::from(nl_hi) << 32,
                }
            }
        }

        #[inline(always)]
        unsafe fn prefix_xor(x: u64) -> u64 {
            // SAFETY: PCLMULQDQ is checked with the kernel. Carry-less multiplication by all
            // ones: bit p of the product is the XOR of bits 0..=p of `x`.
            unsafe {
                let prod = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
                _mm_cvtsi128_si64(prod) as u64
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) use arm::Neon;

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{Block, Bytes, Classify};
    use std::arch::aarch64::*;

    /// The NEON + PMULL kernel (selected only when the CPU has PMULL, i.e. the AES extension).
    pub(crate) struct Neon;

    /// Bit j of the result is the top bit of byte j of the four vectors taken as 64 bytes (a
    /// compare result: 0xFF or 0), as `movemask` does on x86: each byte keeps its bit weight
    /// within its group of eight, and three rounds of pairwise adds sum each group into one byte
    /// (simdjson's arm64 `to_bitmask`).
    #[inline(always)]
    unsafe fn movemask(c: [uint8x16_t; 4]) -> u64 {
        const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
        // SAFETY: NEON is in the arm64 baseline; `WEIGHTS` is 16 readable bytes.
        unsafe {
            let w = vld1q_u8(WEIGHTS.as_ptr());
            let s0 = vpaddq_u8(vandq_u8(c[0], w), vandq_u8(c[1], w));
            let s1 = vpaddq_u8(vandq_u8(c[2], w), vandq_u8(c[3], w));
            let s = vpaddq_u8(s0, s1);
            let s = vpaddq_u8(s, s);
            vgetq_lane_u64::<0>(vreinterpretq_u64_u8(s))
        }
    }

    impl Classify for Neon {
        #[inline(always)]
        unsafe fn block(p: *const u8, b: Bytes) -> Block {
            // SAFETY (whole body): NEON is in the arm64 baseline; the caller guarantees 64
            // readable bytes at `p` (`vld1q_u8` has no alignment requirement).
            unsafe {
                let sd = vdupq_n_u8(b.delimiter);
                let sq = vdupq_n_u8(b.quote);
                let scr = vdupq_n_u8(b'\r');
                let slf = vdupq_n_u8(b'\n');
                let v = [
                    vld1q_u8(p),
                    vld1q_u8(p.add(16)),
                    vld1q_u8(p.add(32)),
                    vld1q_u8(p.add(48)),
                ];
                let q = [
                    vceqq_u8(v[0], sq),
                    vceqq_u8(v[1], sq),
                    vceqq_u8(v[2], sq),
                    vceqq_u8(v[3], sq),
                ];
                let nl = [
                    vorrq_u8(vceqq_u8(v[0], scr), vceqq_u8(v[0], slf)),
                    vorrq_u8(vceqq_u8(v[1], scr), vceqq_u8(v[1], slf)),
                    vorrq_u8(vceqq_u8(v[2], scr), vceqq_u8(v[2], slf)),
                    vorrq_u8(vceqq_u8(v[3], scr), vceqq_u8(v[3], slf)),
                ];
                let sep = [
                    vorrq_u8(nl[0], vceqq_u8(v[0], sd)),
                    vorrq_u8(nl[1], vceqq_u8(v[1], sd)),
                    vorrq_u8(nl[2], vceqq_u8(v[2], sd)),
                    vorrq_u8(nl[3], vceqq_u8(v[3], sd)),
                ];
                Block {
                    q: movemask(q),
                    sep: movemask(sep),
                    nl: movemask(nl),
                }
            }
        }

        #[inline(always)]
        unsafe fn prefix_xor(x: u64) -> u64 {
            // SAFETY: PMULL is checked with the kernel. Carry-less multiplication by all ones:
            // bit p of the product is the XOR of bits 0..=p of `x`.
            unsafe { vmull_p64(x, u64::MAX) as u64 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(block: &[u8], b: Bytes) -> Block {
        let bits = |f: &dyn Fn(u8) -> bool| {
            block
                .iter()
                .enumerate()
                .filter(|(_, &c)| f(c))
                .fold(0u64, |m, (j, _)| m | 1 << j)
        };
        Block {
            q: bits(&|c| c == b.quote),
            sep: bits(&|c| c == b.delimiter || c == b'\r' || c == b'\n'),
            nl: bits(&|c| c == b'\r' || c == b'\n'),
        }
    }

    #[test]
    fn kernels_match_a_byte_loop() {
        let b = Bytes {
            delimiter: b';',
            quote: b'\'',
        };
        let mut seed = 0x1234_5678_9abc_def1u64;
        let alphabet = [
            b';',
            b'\'',
            b'\r',
            b'\n',
            b'a',
            0x80,
            0xFF,
            0x00,
            0x7F,
            0x3B ^ 0x80,
        ];
        for _ in 0..2000 {
            let mut block = [0u8; 64];
            for c in &mut block {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *c = alphabet[(seed % alphabet.len() as u64) as usize];
            }
            let want = naive(&block, b);
            // SAFETY: 64 readable bytes; each kernel is run only when available.
            unsafe {
                let portable = Portable::block(block.as_ptr(), b);
                assert_eq!((portable.q, portable.sep), (want.q, want.sep));
                assert_eq!(portable.nl, want.sep, "portable reports every separator");
                #[cfg(target_arch = "x86_64")]
                {
                    assert_eq!(Sse2::block(block.as_ptr(), b), want);
                    if Kernel::Avx2.available() {
                        assert_eq!(Avx2::block(block.as_ptr(), b), want);
                        assert_eq!(Avx2::prefix_xor(seed), prefix_xor_cascade(seed));
                    }
                }
                #[cfg(target_arch = "aarch64")]
                {
                    assert!(Kernel::Neon.available(), "the arm64 test machine has PMULL");
                    assert_eq!(Neon::block(block.as_ptr(), b), want);
                    assert_eq!(Neon::prefix_xor(seed), prefix_xor_cascade(seed));
                }
            }
            let mut parity = 0u64;
            let mut want_px = 0u64;
            for j in 0..64 {
                parity ^= seed >> j & 1;
                want_px |= parity << j;
            }
            assert_eq!(prefix_xor_cascade(seed), want_px);
        }
    }
}
