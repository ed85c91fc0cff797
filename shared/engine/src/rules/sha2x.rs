//! Two SHA-256 compressions at once, interleaved, with the x86 SHA extensions (SHA-NI).
//!
//! One compression is a chain of 32 `sha256rnds2` instructions, each waiting for the last
//! (latency 4 cycles, one issued every 2 on current AMD and Intel cores), so a lone compression
//! keeps the SHA unit half idle. Two independent ones interleaved fill it: the tokens of a
//! unique column (where every value is hashed) are computed two at a time (`mask.rs`).
//! Without SHA-NI (or off x86-64) this is two calls of `sha2::compress256` ([`compress`], the
//! single compression the rest of the token code uses). Tested against it.

/// One SHA-256 compression. `sha2` 0.10's block type is generic-array 0.14's, which marks
/// itself deprecated in favour of 1.x; there is no other way to name it in this `sha2`.
#[inline]
#[allow(deprecated)]
pub(crate) fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let b = sha2::digest::generic_array::GenericArray::from_slice(block);
    sha2::compress256(state, std::slice::from_ref(b));
}

/// Whether [`compress2`] runs on SHA-NI (checked once; `std` caches the CPUID answer).
pub(crate) fn fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One compression per state, of the block at the same index. `fast`: the value of [`fast`].
#[inline]
pub(crate) fn compress2(fast: bool, s: [&mut [u32; 8]; 2], b: [&[u8; 64]; 2]) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` is `fast()`: the CPU has the features `ni::compress2` is built for.
        unsafe { ni::compress2(s, b) };
        return;
    }
    let _ = fast;
    let [s0, s1] = s;
    compress(s0, b[0]);
    compress(s1, b[1]);
}

#[cfg(target_arch = "x86_64")]
mod ni {
    use core::arch::x86_64::*;

    /// SHA-256 round constants (FIPS 180-4, 4.2.2).
    static K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// The next four message words from the previous sixteen.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
        let t1 = _mm_sha256msg1_epu32(v0, v1);
        let t2 = _mm_alignr_epi8(v3, v2, 4);
        _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), v3)
    }

    /// See [`super::compress2`]. The state layout and shuffles follow Intel's SHA-NI sample
    /// code (and `sha2`'s x86 backend), two streams side by side.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress2(s: [&mut [u32; 8]; 2], b: [&[u8; 64]; 2]) {
        let mask = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        let zero = _mm_setzero_si128();
        let mut abef = [zero; 2];
        let mut cdgh = [zero; 2];
        let mut w = [[zero; 16]; 2];
        for j in 0..2 {
            let p = s[j].as_ptr().cast::<__m128i>();
            let dcba = _mm_loadu_si128(p);
            let efgh = _mm_loadu_si128(p.add(1));
            let cdab = _mm_shuffle_epi32(dcba, 0xB1);
            let efgh = _mm_shuffle_epi32(efgh, 0x1B);
            abef[j] = _mm_alignr_epi8(cdab, efgh, 8);
            cdgh[j] = _mm_blend_epi16(efgh, cdab, 0xF0);
            let d = b[j].as_ptr().cast::<__m128i>();
            for (i, wi) in w[j].iter_mut().take(4).enumerate() {
                *wi = _mm_shuffle_epi8(_mm_loadu_si128(d.add(i)), mask);
            }
        }
        let (abef0, cdgh0) = (abef, cdgh);
        for i in 0..16 {
            let k = _mm_loadu_si128(K.as_ptr().add(4 * i).cast::<__m128i>());
            for j in 0..2 {
                if i >= 4 {
                    w[j][i] = schedule(w[j][i - 4], w[j][i - 3], w[j][i - 2], w[j][i - 1]);
                }
                let t = _mm_add_epi32(w[j][i], k);
                cdgh[j] = _mm_sha256rnds2_epu32(cdgh[j], abef[j], t);
                abef[j] = _mm_sha256rnds2_epu32(abef[j], cdgh[j], _mm_shuffle_epi32(t, 0x0E));
            }
        }
        for j in 0..2 {
            let abef = _mm_add_epi32(abef[j], abef0[j]);
            let cdgh = _mm_add_epi32(cdgh[j], cdgh0[j]);
            let feba = _mm_shuffle_epi32(abef, 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
            let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
            let hgef = _mm_alignr_epi8(dchg, feba, 8);
            let p = s[j].as_mut_ptr().cast::<__m128i>();
            _mm_storeu_si128(p, dcba);
            _mm_storeu_si128(p.add(1), hgef);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_two_compressions() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for fast in [fast(), false] {
            for _ in 0..2000 {
                let mut st = [[0u32; 8]; 2];
                let mut bl = [[0u8; 64]; 2];
                for j in 0..2 {
                    st[j].iter_mut().for_each(|w| *w = next() as u32);
                    bl[j].iter_mut().for_each(|b| *b = next() as u8);
                }
                let mut want = st;
                super::compress(&mut want[0], &bl[0]);
                super::compress(&mut want[1], &bl[1]);
                let [s0, s1] = &mut st;
                compress2(fast, [s0, s1], [&bl[0], &bl[1]]);
                assert_eq!(st, want);
            }
        }
    }
}
