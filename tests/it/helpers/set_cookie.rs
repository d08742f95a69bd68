//! `Set-Cookie` headers parsed by the `cookie` crate, and the assertions the tests make on them
//! (names, values, `Max-Age`, `Path`, flags) instead of matching substrings of the header.
//!
//! The layer's cookies are named `<prefix>_s` (the session, or `<prefix>_s.<n>` when chunked),
//! `<prefix>_id` (the ID token, on `/auth`) and `<prefix>_tx_<n>` (a login transaction). A
//! removal is the name with an empty value and `Max-Age=0`.

use std::fmt;
use std::ops::Deref;

use cookie::time::Duration;
use cookie::Cookie;
use http::{header, Response};

/// One `Set-Cookie` header value, parsed; panics (naming the header) if it does not parse.
pub fn parse_set_cookie(header: &str) -> Cookie<'static> {
    Cookie::parse(header.to_owned())
        .unwrap_or_else(|e| panic!("unparsable Set-Cookie {header:?}: {e}"))
}

/// Every `Set-Cookie` header of a response, parsed, in order.
pub fn set_cookies<B>(resp: &Response<B>) -> SetCookies {
    SetCookies(
        resp.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| parse_set_cookie(v.to_str().unwrap()))
            .collect(),
    )
}

/// The parsed `Set-Cookie` headers of one response. Derefs to a slice of cookies; `Debug`
/// prints them as headers.
#[derive(Clone, Default)]
pub struct SetCookies(pub Vec<Cookie<'static>>);

impl Deref for SetCookies {
    type Target = [Cookie<'static>];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for SetCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

/// `Max-Age=0`: the cookie is removed.
pub fn is_removal(c: &Cookie<'_>) -> bool {
    c.max_age() == Some(Duration::ZERO)
}

/// A removal of the cookie whose name ends with `suffix`: that name, an empty value, `Max-Age=0`.
pub fn removes(c: &Cookie<'_>, suffix: &str) -> bool {
    c.name().ends_with(suffix) && c.value().is_empty() && is_removal(c)
}

/// Whether the cookie is the session cookie, `<prefix>_s` (not one of its chunks).
pub fn is_session(c: &Cookie<'_>) -> bool {
    c.name().ends_with("_s")
}

/// Whether the cookie is the ID token cookie, `<prefix>_id`.
pub fn is_id_token(c: &Cookie<'_>) -> bool {
    c.name().ends_with("_id")
}

impl SetCookies {
    /// The session cookie is removed (`<prefix>_s=; ...; Max-Age=0`).
    pub fn clears_session(&self) -> bool {
        self.iter().any(|c| removes(c, "_s"))
    }

    /// The session cookie and the ID token cookie are both removed.
    pub fn clears_session_and_id_token(&self) -> bool {
        self.clears_session() && self.iter().any(|c| removes(c, "_id"))
    }

    /// Some cookie is removed (`Max-Age=0`), whichever it is.
    pub fn removes_any(&self) -> bool {
        self.iter().any(is_removal)
    }

    /// Every cookie set is a removal.
    pub fn all_removals(&self) -> bool {
        self.iter().all(is_removal)
    }

    /// The session cookie written with a value (not removed), if any.
    pub fn session(&self) -> Option<&Cookie<'static>> {
        self.iter().find(|c| is_session(c) && !is_removal(c))
    }

    /// The names of the cookies set, in order.
    pub fn names(&self) -> Vec<&str> {
        self.iter().map(Cookie::name).collect()
    }
}

/// `name=value` of a cookie: what a browser sends back in its `Cookie` header.
pub fn cookie_pair(c: &Cookie<'_>) -> String {
    format!("{}={}", c.name(), c.value())
}
