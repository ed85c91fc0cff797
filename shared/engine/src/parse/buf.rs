//! How the parser fills the caller's [`RecordBuf`]: starting a record, appending field text
//! within the size limits, ending a field. Shared by the byte state machine and the
//! structural-index fast path, so both grow the buffer by the same rules.
//!
//! Not here: deciding where fields end (the parser does).

use super::{ParserConfig, RecordBuf};

impl RecordBuf {
    #[inline]
    pub(super) fn begin(&mut self, start: u64, line: u64, cfg: &ParserConfig) {
        self.text.clear();
        self.ends.clear();
        self.start = start;
        self.content_end = start;
        self.start_line = line;
        self.stray_quote = false;
        self.too_large = false;
        self.any_quoted = false;
        self.max_field = cfg.max_field_bytes;
        self.max_record = cfg.max_record_bytes;
        self.limit = self.max_field.min(self.max_record);
    }

    #[inline]
    pub(super) fn push(&mut self, bytes: &[u8]) {
        // One comparison on the hot path: `limit` is where the current field (or the record)
        // becomes too large; 0 once the record is too large.
        if self.text.len() + bytes.len() > self.limit {
            if !bytes.is_empty() {
                // Bounded memory: stop buffering; the record will be rejected.
                self.too_large = true;
                self.limit = 0;
            }
            return;
        }
        self.text.extend_from_slice(bytes);
    }

    /// [`push`](Self::push) of `input[a..b]`, copying short fields with one fixed-size copy
    /// (no `memcpy` call) when 32 bytes can be read at `a`.
    #[inline(always)]
    pub(super) fn push_from(&mut self, input: &[u8], a: usize, b: usize) {
        let len = b - a;
        let len0 = self.text.len();
        if len0 + len > self.limit || len > 32 || a + 32 > input.len() {
            self.push(&input[a..b]);
            return;
        }
        self.text.reserve(32);
        // SAFETY: `a + 32 <= input.len()` (checked), and `reserve` made room for 32 bytes past
        // the text's length; only the first `len <= 32` of them become part of the text.
        unsafe {
            std::ptr::copy_nonoverlapping(
                input.as_ptr().add(a),
                self.text.as_mut_ptr().add(len0),
                32,
            );
            self.text.set_len(len0 + len);
        }
    }

    #[inline]
    pub(super) fn end_field(&mut self) {
        if self.too_large {
            return;
        }
        if self.ends.len() * 8 >= self.max_record {
            self.too_large = true;
            self.limit = 0;
            return;
        }
        let len = self.text.len();
        self.ends.push(len);
        self.limit = len.saturating_add(self.max_field).min(self.max_record);
    }
}
