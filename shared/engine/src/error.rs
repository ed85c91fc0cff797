//! The engine's one error type. Every variant has a stable `code()` that callers put in job
//! records and API responses; the `Display` text says what is wrong and what to do about it.
//!
//! Not here: per-record problems (ragged rows, bad UTF-8, ...). Those are not errors, they are
//! [`crate::record::RejectReason`]s: the record goes to the rejected output and work goes on.

use thiserror::Error;

/// A problem that stops the processing of a whole file (or of a chunk).
#[derive(Debug, Error)]
pub enum EngineError {
    /// A quote opened a field that never closes before the end of the file.
    #[error(
        "unbalanced quote: the quoted field opened at byte {offset} is never closed before the end \
         of the file; close the quote, or double quote characters that are part of the data (\"\")"
    )]
    UnbalancedQuote {
        /// Byte offset of the opening quote in the file.
        offset: u64,
    },
    /// The file is not UTF-8 (or ASCII): a UTF-16 BOM or a pattern of NUL bytes was found.
    #[error(
        "unsupported encoding: {detail}; re-save the file as UTF-8 (for example \
         `iconv -f UTF-16 -t UTF-8`) and upload it again"
    )]
    UnsupportedEncoding {
        /// What gave the encoding away.
        detail: String,
    },
    /// The header record cannot be used (not UTF-8, contains a NUL or a stray quote).
    #[error(
        "invalid header: {detail}; fix the first line of the file, or say that it has no header"
    )]
    InvalidHeader {
        /// What is wrong with it.
        detail: String,
    },
    /// The header record does not end within the bytes given to the sniffer.
    #[error(
        "header too long: the first record does not end within the first {limit} bytes; \
         check the quote character and the line endings, or raise the sniff size"
    )]
    HeaderTooLong {
        /// How many bytes were looked at.
        limit: usize,
    },
    /// The first record has more fields than the engine accepts (`dialect::MAX_COLUMNS`).
    #[error(
        "too many columns: the first record has {columns} fields and at most {limit} are \
         accepted; check the delimiter (a wrong one can split every value), or split the file \
         into files of at most {limit} columns"
    )]
    TooManyColumns {
        /// Fields in the first record.
        columns: usize,
        /// The limit.
        limit: usize,
    },
    /// An option has a value the engine cannot work with.
    #[error("invalid option: {detail}")]
    InvalidOption {
        /// Which option and why.
        detail: String,
    },
    /// Reading the input or writing an output failed.
    #[error("i/o error while {context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A chunk's result could not be serialised (profile.json and friends).
    #[error("could not encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl EngineError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::UnbalancedQuote { .. } => "unbalanced_quote",
            EngineError::UnsupportedEncoding { .. } => "unsupported_encoding",
            EngineError::InvalidHeader { .. } => "invalid_header",
            EngineError::HeaderTooLong { .. } => "header_too_long",
            EngineError::TooManyColumns { .. } => "too_many_columns",
            EngineError::InvalidOption { .. } => "invalid_option",
            EngineError::Io { .. } => "io_error",
            EngineError::Encode { .. } => "encode_error",
        }
    }

    /// Wraps an I/O error with what the engine was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io {
            context: context.into(),
            source,
        }
    }
}
