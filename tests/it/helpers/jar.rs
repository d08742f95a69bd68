//! A tiny browser cookie jar: stores what `Set-Cookie` headers set (parsed by the `cookie`
//! crate), and sends back what a browser would for a path.

use axum::body::Body;
use cookie::Cookie;
use http::{header, Response};

use super::set_cookie::{is_removal, parse_set_cookie};

/// A cookie jar that behaves like a browser for name, path and deletion.
#[derive(Default, Clone, Debug)]
pub struct Jar {
    pub cookies: Vec<StoredCookie>,
}

#[derive(Clone, Debug)]
pub struct StoredCookie {
    pub name: String,
    pub value: String,
    /// The cookie's `Path` (`/` when the `Set-Cookie` named none).
    pub path: String,
    /// The `Set-Cookie` that stored this cookie, parsed; `None` for a cookie a test planted in
    /// the jar itself (what another site could leave in a browser).
    pub set_cookie: Option<Cookie<'static>>,
}

impl StoredCookie {
    /// The parsed `Set-Cookie` that stored this cookie, for assertions on its attributes.
    pub fn attrs(&self) -> &Cookie<'static> {
        self.set_cookie
            .as_ref()
            .unwrap_or_else(|| panic!("{} was planted by the test, not set", self.name))
    }
}

impl Jar {
    pub fn absorb(&mut self, resp: &Response<Body>) {
        for v in resp.headers().get_all(header::SET_COOKIE) {
            let c = parse_set_cookie(v.to_str().unwrap());
            let path = c.path().unwrap_or("/").to_owned();
            self.cookies
                .retain(|s| !(s.name == c.name() && s.path == path));
            if !is_removal(&c) {
                self.cookies.push(StoredCookie {
                    name: c.name().to_owned(),
                    value: c.value().to_owned(),
                    path,
                    set_cookie: Some(c),
                });
            }
        }
    }

    pub fn header_for(&self, path: &str) -> String {
        self.cookies
            .iter()
            .filter(|c| {
                c.path == "/" || path == c.path || path.starts_with(&format!("{}/", c.path))
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn get(&self, name_suffix: &str) -> Option<&StoredCookie> {
        self.cookies.iter().find(|c| c.name.ends_with(name_suffix))
    }

    pub fn tx(&self) -> Option<&StoredCookie> {
        self.cookies.iter().find(|c| c.name.contains("_tx_"))
    }

    pub fn names(&self) -> Vec<String> {
        self.cookies.iter().map(|c| c.name.clone()).collect()
    }
}
