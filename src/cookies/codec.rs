//! Sealing, opening, chunking and writing the layer's cookies.

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{chunk_name, RequestCookies, TooLarge, CHUNK, MAX_SEALED};

/// A cookie's name and path.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) path: String,
}

/// Seals, opens, and formats the layer's cookies.
pub(crate) struct CookieCodec {
    keys: Vec<Key>,
    secure: bool,
    /// Every cookie name of this app starts with this.
    pub(crate) prefix: String,
    pub(crate) session: Slot,
    pub(crate) id_token: Slot,
    pub(crate) tx_index: Slot,
    /// The silent-login "tried" flag (see `crate::silent`), on the session path.
    pub(crate) silent: Slot,
    /// Transaction cookies: `tx_prefix` + id, on `tx_path`.
    pub(crate) tx_prefix: String,
    pub(crate) tx_path: String,
}

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieCodec")
            .field("keys", &"REDACTED")
            .field("secure", &self.secure)
            .field("session", &self.session)
            .field("id_token", &self.id_token)
            .finish_non_exhaustive()
    }
}

/// The app-specific part of cookie names, derived from the client id.
pub(crate) fn app_part(client_id: &str) -> String {
    let digest = Sha256::digest(client_id.as_bytes());
    let mut out = String::from("oidc_");
    for b in &digest[..4] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl CookieCodec {
    /// `base`: the app-specific name part. Paths must already be normalized.
    ///
    /// The login transaction cookies (each attempt's, and their index) are `__Host-` with
    /// `Path=/`: a sibling subdomain can set `__Secure-` cookies for this host (cookie tossing,
    /// through `Domain=` on the parent), but never `__Host-` ones, so it cannot plant a
    /// transaction of its own for the callback to complete (login CSRF).
    pub(crate) fn new(
        keys: Vec<Key>,
        secure: bool,
        base: &str,
        session_path: &str,
        auth_path: &str,
    ) -> Self {
        // `__Host-` needs Secure and Path=/; `__Secure-` needs Secure. Plain http on loopback
        // gets neither.
        let prefixed = |path: &str, suffix: &str| {
            let p = match (secure, path == "/") {
                (false, _) => "",
                (true, true) => "__Host-",
                (true, false) => "__Secure-",
            };
            format!("{p}{base}{suffix}")
        };
        let tx_prefix = prefixed("/", "_tx_");
        Self {
            keys,
            secure,
            prefix: base.to_owned(),
            session: Slot {
                name: prefixed(session_path, "_s"),
                path: session_path.to_owned(),
            },
            id_token: Slot {
                name: prefixed(auth_path, "_id"),
                path: auth_path.to_owned(),
            },
            tx_index: Slot {
                name: prefixed("/", "_txi"),
                path: "/".to_owned(),
            },
            silent: Slot {
                name: prefixed(session_path, "_silent"),
                path: session_path.to_owned(),
            },
            tx_prefix,
            tx_path: "/".to_owned(),
        }
    }

    pub(crate) fn read<'a>(&self, headers: &'a HeaderMap) -> RequestCookies<'a> {
        RequestCookies::parse(headers, &self.prefix, &self.session.name)
    }

    /// Seals `value` under `name` with the primary key.
    pub(crate) fn seal(&self, name: &str, value: &str) -> String {
        let mut jar = CookieJar::new();
        jar.private_mut(&self.keys[0])
            .add(Cookie::new(name.to_owned(), value.to_owned()));
        jar.get(name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default()
    }

    /// Opens a sealed value with any configured key (the first one that authenticates it).
    pub(crate) fn open(&self, name: &str, sealed: &str) -> Option<String> {
        let jar = CookieJar::new();
        self.keys.iter().find_map(|key| {
            jar.private(key)
                .decrypt(Cookie::new(name.to_owned(), sealed.to_owned()))
                .map(|c| c.value().to_owned())
        })
    }

    /// Reads and opens a (possibly chunked) JSON cookie. `Err(())` means present but unusable.
    pub(crate) fn read_json<T: DeserializeOwned>(
        &self,
        cookies: &RequestCookies<'_>,
        name: &str,
    ) -> Option<Result<T, ()>> {
        let (sealed, _) = cookies.chunked(name)?;
        Some(
            self.open(name, &sealed)
                .and_then(|plain| serde_json::from_str(&plain).ok())
                .ok_or(()),
        )
    }

    /// Set-Cookie headers that store `value` in `slot`, chunked, deleting leftover chunks.
    ///
    /// Only what can be read back is written: a value that needs more than [`MAX_CHUNKS`]
    /// cookies writes nothing and says how large it is (a session written in more chunks than
    /// are read would never be read: an endless login loop).
    pub(crate) fn write_json<T: Serialize>(
        &self,
        slot: &Slot,
        value: &T,
        max_age: i64,
        present_chunks: usize,
        out: &mut Vec<HeaderValue>,
    ) -> Result<(), TooLarge> {
        let plain = serde_json::to_string(value).unwrap_or_default();
        let sealed = self.seal(&slot.name, &plain);
        if sealed.len() > MAX_SEALED {
            return Err(TooLarge {
                sealed: sealed.len(),
                plain: plain.len(),
            });
        }
        self.write_sealed(slot, &sealed, max_age, present_chunks, out);
        Ok(())
    }

    fn write_sealed(
        &self,
        slot: &Slot,
        sealed: &str,
        max_age: i64,
        present_chunks: usize,
        out: &mut Vec<HeaderValue>,
    ) {
        // The sealed value is base64: every byte is one char, so byte splits are char splits.
        let parts: Vec<&str> = sealed
            .as_bytes()
            .chunks(CHUNK)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        for (i, part) in parts.iter().enumerate() {
            out.push(self.set(&chunk_name(&slot.name, i), &slot.path, part, max_age));
        }
        for i in parts.len()..present_chunks {
            out.push(self.clear(&chunk_name(&slot.name, i), &slot.path));
        }
    }

    /// Deletes `slot` and the chunks the request carried.
    pub(crate) fn clear_slot(
        &self,
        slot: &Slot,
        present_chunks: usize,
        out: &mut Vec<HeaderValue>,
    ) {
        for i in 0..present_chunks.max(1) {
            out.push(self.clear(&chunk_name(&slot.name, i), &slot.path));
        }
    }

    pub(crate) fn set(&self, name: &str, path: &str, value: &str, max_age: i64) -> HeaderValue {
        let cookie = Cookie::build((name, value))
            .path(path)
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build();
        header(&cookie)
    }

    pub(crate) fn clear(&self, name: &str, path: &str) -> HeaderValue {
        let cookie = Cookie::build((name, ""))
            .path(path)
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::ZERO)
            .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
            .build();
        header(&cookie)
    }
}

fn header(cookie: &Cookie<'_>) -> HeaderValue {
    // Names and paths are ours and values are base64, so this cannot fail; never panic anyway.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}
