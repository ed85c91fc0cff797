//! The opaque `cursor` of the listings (`GET /v1/jobs`, `GET /v1/references`): base64url (no
//! padding) of what the listing resumes after. Each listing checks the decoded value belongs to
//! the caller; anything else is one error, `invalid_cursor`.

use base64::Engine as _;
use tessera_shared::error::ApiError;

/// The cursor of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of a cursor made by [`encode`] (padding tolerated), or [`invalid`].
pub fn decode(cursor: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .map_err(|_| invalid())
}

/// 400 `invalid_cursor`: not a `next_cursor` this API gave the caller.
pub fn invalid() -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        "`cursor` is not one this API gave you; pass `next_cursor` from the previous page unchanged, or leave it out to start from the first page.",
    )
}
