//! Internals exposed for the criterion benchmarks only. Not part of the public API.
#![allow(missing_docs)]

use http::HeaderMap;

use crate::session::{refresh_due, SessionData};

use crate::AuthLayer;

/// Reads and opens the session cookie, as every request does.
pub fn open_session(auth: &AuthLayer, headers: &HeaderMap) -> Option<i64> {
    let shared = &auth.shared;
    let cookies = shared.cookies.read(headers);
    match shared
        .cookies
        .read_json::<SessionData>(&cookies, &shared.cookies.session.name)
    {
        Some(Ok(data)) => Some(data.exp),
        _ => None,
    }
}

/// The refresh check done on the hot path when the session is valid.
pub fn refresh_check(auth: &AuthLayer, exp: i64, ts: i64, now: i64) -> bool {
    refresh_due(exp, ts, auth.shared.settings.refresh_margin, now)
}
