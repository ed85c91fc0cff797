//! The borrowed view of one parsed record, and the reasons a record can be rejected.
//! Shared by the parser (which produces records) and the profile (which consumes them).

use serde::{Deserialize, Serialize};

/// One parsed record: the unescaped field text laid end to end, plus the end offset of each
/// field in that text. Borrowed from the parser's buffers; valid until the next record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    text: &'a str,
    ends: &'a [usize],
}

impl<'a> Record<'a> {
    /// `ends[i]` is the end (exclusive) of field `i` in `text`; field `i` starts at `ends[i-1]` (or 0).
    ///
    /// # Panics
    /// If the ends are not non-decreasing char boundaries of `text`. Checked once here, so that
    /// reading the fields (every rule and the profile read them, some several times) needs no
    /// boundary checks.
    pub fn new(text: &'a str, ends: &'a [usize]) -> Self {
        let mut prev = 0;
        for &e in ends {
            assert!(
                e >= prev && text.is_char_boundary(e),
                "record field ends must be non-decreasing char boundaries"
            );
            prev = e;
        }
        Record { text, ends }
    }

    /// [`new`](Self::new) without the checks, for the chunk processor, whose parser produces
    /// non-decreasing ends and which has established that they are char boundaries
    /// (`chunk::utf8_fields`).
    ///
    /// # Safety
    /// `ends` must be non-decreasing char boundaries of `text`.
    #[inline]
    pub(crate) unsafe fn new_unchecked(text: &'a str, ends: &'a [usize]) -> Self {
        debug_assert!(ends.windows(2).all(|w| w[0] <= w[1]));
        debug_assert!(ends.iter().all(|&e| text.is_char_boundary(e)));
        Record { text, ends }
    }

    /// Field text between two checked ends.
    #[inline]
    fn slice(text: &'a str, start: usize, end: usize) -> &'a str {
        debug_assert!(start <= end && text.is_char_boundary(start) && text.is_char_boundary(end));
        // SAFETY: `new` checked that every end is a char boundary of `text`, that ends do not
        // decrease (so start <= end), and 0 is always a boundary.
        unsafe { text.get_unchecked(start..end) }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i`, unescaped.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(Self::slice(self.text, start, end))
    }

    /// Byte range `[start, end)` of field `i` in the record text (`i` must be in range).
    #[inline]
    pub(crate) fn span(&self, i: usize) -> (usize, usize) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (start, self.ends[i])
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let text = self.text;
        let ends = self.ends;
        let mut start = 0;
        ends.iter().map(move |&end| {
            let f = Self::slice(text, start, end);
            start = end;
            f
        })
    }
}

/// Why a record went to the rejected output instead of the clean one. The `code()` strings are
/// stable: they appear in `rejected.csv` and in the profile, and users script against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The record has a different number of fields than the header (or the first record).
    RaggedRow,
    /// The record's bytes are not valid UTF-8.
    InvalidUtf8,
    /// The record contains a NUL byte (binary data).
    NulByte,
    /// A field is longer than the configured limit; its bytes were skipped, not buffered.
    FieldTooLarge,
    /// A quote character appeared inside an unquoted field, or text followed a closing quote.
    StrayQuote,
}

impl RejectReason {
    /// The stable code written to outputs.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::RaggedRow => "ragged_row",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::NulByte => "nul_byte",
            RejectReason::FieldTooLarge => "field_too_large",
            RejectReason::StrayQuote => "stray_quote",
        }
    }
}
