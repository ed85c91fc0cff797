//! The parser's fast path: the fields of a record located from a structural index of 64 bytes
//! at a time (`index`), instead of byte by byte.
//!
//! It runs only from `State::FieldStart` (outside quotes, at the first byte of a field) with at
//! least 64 bytes of input left, and takes the common shapes only: unquoted fields without
//! quotes, and quoted fields `"..."` whose inner quotes are `""` escapes, closed right before a
//! delimiter or terminator. Anything else (a stray quote, a field running past the block or
//! past the input) makes it stop *before* that field and hand it to the state machine, with
//! every earlier field of the record already done: the state is `FieldStart` there, exactly as
//! the state machine would have left it. Everything it does is what the state machine does for
//! the same bytes (same `RecordBuf::push` calls in the same order, same counters), which
//! `tests/parse_kernels.rs` and the `parse_kernels` fuzz target check.
//!
//! Why the blocks stay exact without carrying quote state between calls: a block is always
//! classified starting at a field start, which is outside quotes, and the fast path only walks
//! past fields with an even number of quotes; so the prefix XOR of the block's quote bitmap is
//! the in-quotes mask for every later byte of the block (the engine's parity definition).
//!
//! Not here: record starts, blank lines, the `stop_at` boundary, or the `Skip*` states (the
//! state machine in `parse.rs` does those).

use super::index::{Block, Bytes, Classify, Kernel, Portable};
use super::{Parser, RecordBuf, State, CR};

/// What the fast path did.
pub(super) enum Fast {
    /// A record ended; the byte after its terminator is at this index.
    Record(usize),
    /// The field at this index is left to the state machine (state `FieldStart`).
    Bail(usize),
}

/// Runs the fast path with the parser's kernel (never `Scalar`).
#[inline]
pub(super) fn fields(p: &mut Parser, input: &[u8], fs: usize, rec: &mut RecordBuf) -> Fast {
    match p.kernel {
        Kernel::Scalar | Kernel::Portable => run::<Portable>(p, input, fs, rec),
        #[cfg(target_arch = "x86_64")]
        Kernel::Sse2 => run::<super::index::Sse2>(p, input, fs, rec),
        // SAFETY: a parser holds `Avx2` only when the CPU has AVX2 and PCLMULQDQ
        // (`Parser::new` / `with_kernel` check `Kernel::available`).
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { run_avx2(p, input, fs, rec) },
        // SAFETY: a parser holds `Neon` only when the CPU has PMULL (`Kernel::available`).
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => unsafe { run_neon(p, input, fs, rec) },
    }
}

#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon,aes")]
unsafe fn run_neon(p: &mut Parser, input: &[u8], fs: usize, rec: &mut RecordBuf) -> Fast {
    run::<super::index::Neon>(p, input, fs, rec)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,pclmulqdq")]
unsafe fn run_avx2(p: &mut Parser, input: &[u8], fs: usize, rec: &mut RecordBuf) -> Fast {
    run::<super::index::Avx2>(p, input, fs, rec)
}

/// Bits `0..n` set (`n < 64`).
#[inline(always)]
fn low(n: usize) -> u64 {
    (1u64 << n) - 1
}

/// The classified block at `b` and its separators outside quotes.
#[inline(always)]
fn classify<K: Classify>(input: &[u8], b: usize, bytes: Bytes) -> (Block, u64) {
    debug_assert!(b + 64 <= input.len());
    // SAFETY: callers check `b + 64 <= input.len()`; the kernel is available (see `fields`).
    unsafe {
        let blk = K::block(input.as_ptr().add(b), bytes);
        let inside = if blk.q == 0 { 0 } else { K::prefix_xor(blk.q) };
        (blk, blk.sep & !inside)
    }
}

#[inline(always)]
fn run<K: Classify>(p: &mut Parser, input: &[u8], mut fs: usize, rec: &mut RecordBuf) -> Fast {
    let n = input.len();
    let bytes = Bytes {
        delimiter: p.cfg.delimiter,
        quote: p.cfg.quote,
    };
    if fs + 64 > n {
        return Fast::Bail(fs);
    }
    // The block starts at `b`, a field start (outside quotes).
    let mut b = fs;
    let (mut blk, mut seps) = classify::<K>(input, b, bytes);
    loop {
        let off = fs - b;
        let after = seps >> off;
        if after == 0 {
            // The field does not end in this block: classify again from its start, once.
            if off == 0 || fs + 64 > n {
                return Fast::Bail(fs);
            }
            b = fs;
            (blk, seps) = classify::<K>(input, b, bytes);
            continue;
        }
        let e = after.trailing_zeros() as usize;
        let end = fs + e;
        let qf = (blk.q >> off) & low(e);
        if qf == 0 {
            rec.push_from(input, fs, end);
        } else if !quoted(p, input, fs, e, qf, (blk.nl >> off) & low(e), rec) {
            return Fast::Bail(fs);
        }
        rec.end_field();
        let sep = input[end];
        if sep == bytes.delimiter {
            fs = end + 1;
            if fs >= b + 64 {
                if fs + 64 > n {
                    return Fast::Bail(fs);
                }
                b = fs;
                (blk, seps) = classify::<K>(input, b, bytes);
            }
            continue;
        }
        rec.content_end = p.pos + end as u64;
        p.lines += 1;
        p.state = if sep == CR {
            State::AfterCr
        } else {
            State::LineStart
        };
        return Fast::Record(end + 1);
    }
}

/// A quoted field of `e` bytes at `fs` (quote bits `qf`, line-break bits `nlf`, both relative
/// to `fs`): if it is `"..."` with only `""` escapes inside, does what the state machine does
/// (pushes, counters) and returns true; otherwise changes nothing and returns false.
// Out of line: most fields are unquoted, and the hot loop keeps its registers.
#[inline(never)]
fn quoted(
    p: &mut Parser,
    input: &[u8],
    fs: usize,
    e: usize,
    qf: u64,
    nlf: u64,
    rec: &mut RecordBuf,
) -> bool {
    if e < 2 || qf & 1 == 0 || qf >> (e - 1) & 1 == 0 {
        return false;
    }
    let inner = qf & !1 & !(1 << (e - 1));
    // Inner quotes must pair up from the left (`""` escapes): the first quote of a pair would
    // otherwise close the field early, with text after it (a stray quote).
    let mut a = inner;
    while a != 0 {
        let k = a.trailing_zeros();
        if a >> k & 2 == 0 {
            return false;
        }
        a &= !(3 << k);
    }
    p.quotes += u64::from(qf.count_ones());
    p.quote_open_at = p.pos + fs as u64;
    rec.any_quoted = true;
    // Line breaks inside quotes count as the state machine counts them run by run: a `""`
    // between a CR and an LF separates them there and here alike.
    p.quoted_cr = false;
    if nlf != 0 {
        p.count_breaks(&input[fs + 1..fs + e - 1]);
    }
    // The same pushes as the state machine: each run, then one quote per `""`.
    let mut from = fs + 1;
    let mut a = inner;
    while a != 0 {
        let k = a.trailing_zeros() as usize;
        rec.push(&input[from..fs + k]);
        rec.push(&[p.cfg.quote]);
        from = fs + k + 2;
        a &= !(3 << k);
    }
    rec.push_from(input, from, fs + e - 1);
    true
}
