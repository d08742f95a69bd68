//! Cookie names, paths, flags, AEAD encryption (the `cookie` crate's private jar), chunking, and
//! key rotation.
//!
//! Every value is sealed with AES-256-GCM under the cookie's base name as associated data, so a
//! value cannot be moved between cookies or between apps. Values larger than one cookie are split
//! after sealing into `name`, `name.1`, `name.2`, ... and joined before opening.

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The most bytes of sealed value per cookie; the rest of the 4096-byte budget is name and
/// attributes.
const CHUNK: usize = 3800;
/// At most this many chunks are read: a bound on work per request. No more are ever written.
pub(crate) const MAX_CHUNKS: usize = 8;
/// The largest sealed value that is written: what [`MAX_CHUNKS`] cookies can carry back.
pub(crate) const MAX_SEALED: usize = CHUNK * MAX_CHUNKS;

/// A value too large for the cookies the layer reads back: it was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    /// Bytes of the sealed value.
    pub(crate) sealed: usize,
    /// Bytes of the value before sealing.
    pub(crate) plain: usize,
}

impl TooLarge {
    /// The most sealed bytes that are written.
    pub(crate) const LIMIT: usize = MAX_SEALED;
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes sealed ({} bytes of JSON), more than the {} bytes ({MAX_CHUNKS} cookies) \
             read back",
            self.sealed,
            self.plain,
            Self::LIMIT
        )
    }
}

/// How many of our cookies are kept without allocating (a session is usually one).
const INLINE: usize = 8;
/// At most this many of our cookies are read from a request (plus the session's chunks).
const MAX_KEPT: usize = 64;

/// The cookies this layer owns, as one request presented them. The first few are kept inline,
/// so the common request allocates nothing here. Names are text; values are kept as the bytes
/// the request sent and checked to be text only when read as text ([`get`](Self::get)): a
/// session seen before is found by the fingerprint of its bytes without a pass over them.
pub(crate) struct RequestCookies<'a> {
    inline: [(&'a str, &'a [u8]); INLINE],
    len: usize,
    spill: Vec<(&'a str, &'a [u8])>,
}

/// The byte ranges between the `;` separators of a Cookie header (SIMD search: a session cookie
/// is kilobytes long, and a byte-at-a-time split was a visible part of a request's cost).
fn separated(bytes: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut start = 0;
    memchr::memchr_iter(b';', bytes)
        .chain(std::iter::once(bytes.len()))
        .map(move |end| {
            let part = &bytes[start..end];
            start = end + 1;
            part
        })
}

impl<'a> RequestCookies<'a> {
    /// Reads every `Cookie` header, keeping only this app's names: those that start with `app`
    /// once a `__Host-` or `__Secure-` prefix is set aside.
    ///
    /// At most [`MAX_KEPT`] names are kept, a bound on work per request; past it, names that
    /// start with `priority` (the session cookie and its chunks) are still kept, up to
    /// [`MAX_CHUNKS`] more. Cookies a sibling subdomain tosses in therefore never crowd out a
    /// `__Host-` session cookie (it cannot plant names that start with it). A `__Secure-` or
    /// unprefixed session cookie (a session path narrower than `/`, or plain http) can be
    /// hidden by a sibling that plants the session's own name in front: that signs the user
    /// out of the request, it never signs anyone in.
    ///
    /// The header is split with the `memchr` crate and only names are checked to be text
    /// (values when they are read): other apps' cookies cost little, and a cookie that is not
    /// UTF-8 (a sibling subdomain can toss one in) hides nothing but itself.
    pub(crate) fn parse(headers: &'a HeaderMap, app: &str, priority: &str) -> Self {
        let mut pairs = Self {
            inline: [("", b""); INLINE],
            len: 0,
            spill: Vec::new(),
        };
        let mut extra = 0;
        for value in headers.get_all(http::header::COOKIE) {
            for part in separated(value.as_bytes()) {
                pairs.consider(part, app, priority, &mut extra);
            }
        }
        pairs
    }

    /// Keeps one `name=value` pair if it is this app's (see [`parse`](Self::parse)).
    fn consider(&mut self, part: &'a [u8], app: &str, priority: &str, extra: &mut usize) {
        let Some(eq) = part.iter().position(|b| *b == b'=') else {
            return;
        };
        let Ok(name) = std::str::from_utf8(part[..eq].trim_ascii()) else {
            return;
        };
        let bare = name
            .strip_prefix("__Host-")
            .or_else(|| name.strip_prefix("__Secure-"))
            .unwrap_or(name);
        if !bare.starts_with(app) {
            return;
        }
        if self.len + self.spill.len() >= MAX_KEPT {
            if *extra >= MAX_CHUNKS || !name.starts_with(priority) {
                return;
            }
            *extra += 1;
        }
        let v = part[eq + 1..].trim_ascii();
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        self.push((name, v));
    }

    fn push(&mut self, pair: (&'a str, &'a [u8])) {
        if self.len < INLINE {
            self.inline[self.len] = pair;
            self.len += 1;
        } else {
            self.spill.push(pair);
        }
    }

    fn pairs(&self) -> impl Iterator<Item = &(&'a str, &'a [u8])> {
        self.inline[..self.len].iter().chain(self.spill.iter())
    }

    /// The value of the first cookie named `name` whose value is text.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs()
            .filter(|(n, _)| *n == name)
            .find_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The bytes of the first cookie named `name`, text or not.
    fn get_bytes(&self, name: &str) -> Option<&'a [u8]> {
        self.pairs().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// Names present that start with `prefix`.
    pub(crate) fn names_with_prefix<'s>(
        &'s self,
        prefix: &'s str,
    ) -> impl Iterator<Item = &'a str> + 's {
        self.pairs()
            .filter(move |(n, _)| n.starts_with(prefix))
            .map(|(n, _)| *n)
    }

    /// The value of chunk `index` (`name.<index>`), without building the name.
    fn get_chunk(&self, name: &str, index: usize) -> Option<&'a str> {
        if index == 0 {
            return self.get(name);
        }
        self.chunk_pairs(name, index)
            .find_map(|v| std::str::from_utf8(v).ok())
    }

    /// The values of chunk `index` of `name` (`name.<index>`), as bytes.
    fn chunk_pairs<'s>(
        &'s self,
        name: &'s str,
        index: usize,
    ) -> impl Iterator<Item = &'a [u8]> + 's {
        self.pairs()
            .filter(move |(n, _)| {
                n.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .and_then(|digits| digits.parse::<usize>().ok())
                    == Some(index)
            })
            .map(|(_, v)| *v)
    }

    /// The bytes of a session-like cookie (every chunk joined), text or not: what
    /// [`sealed`](Self::sealed) reads, without checking it is text. Used to find a cookie seen
    /// before by its fingerprint; a value that is not text never made an entry.
    pub(crate) fn sealed_bytes(&self, name: &str) -> Option<std::borrow::Cow<'a, [u8]>> {
        let first = self.get_bytes(name)?;
        if self.chunk_pairs(name, 1).next().is_none() {
            return Some(std::borrow::Cow::Borrowed(first));
        }
        let mut value = first.to_vec();
        for index in 1..MAX_CHUNKS {
            match self.chunk_pairs(name, index).next() {
                Some(part) => value.extend_from_slice(part),
                None => break,
            }
        }
        Some(std::borrow::Cow::Owned(value))
    }

    /// Joins `name`, `name.1`, ... Returns the value and how many chunks were present.
    pub(crate) fn chunked(&self, name: &str) -> Option<(String, usize)> {
        let first = self.get(name)?;
        let mut value = first.to_owned();
        let mut count = 1;
        while count < MAX_CHUNKS {
            match self.get_chunk(name, count) {
                Some(part) => {
                    value.push_str(part);
                    count += 1;
                }
                None => break,
            }
        }
        Some((value, count))
    }

    /// Like [`chunked`](Self::chunked), borrowing when there is a single chunk (the usual case).
    pub(crate) fn sealed(&self, name: &str) -> Option<std::borrow::Cow<'a, str>> {
        let first = self.get(name)?;
        if self.get_chunk(name, 1).is_none() {
            return Some(std::borrow::Cow::Borrowed(first));
        }
        self.chunked(name).map(|(v, _)| std::borrow::Cow::Owned(v))
    }

    /// How many chunks of `name` the request carried (0 when absent).
    pub(crate) fn chunk_count(&self, name: &str) -> usize {
        if self.get(name).is_none() {
            return 0;
        }
        (1..MAX_CHUNKS)
            .take_while(|i| self.get_chunk(name, *i).is_some())
            .count()
            + 1
    }
}

pub(crate) fn chunk_name(name: &str, index: usize) -> String {
    if index == 0 {
        name.to_owned()
    } else {
        format!("{name}.{index}")
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(secure: bool) -> CookieCodec {
        CookieCodec::new(
            vec![Key::from(&[7u8; 64])],
            secure,
            "oidc_abcd",
            "/",
            "/auth",
        )
    }

    #[test]
    fn names_and_prefixes() {
        let c = codec(true);
        assert_eq!(c.session.name, "__Host-oidc_abcd_s");
        assert_eq!(c.id_token.name, "__Secure-oidc_abcd_id");
        assert_eq!(c.tx_index.path, "/");
        assert_eq!(c.tx_index.name, "__Host-oidc_abcd_txi");
        assert_eq!(c.tx_prefix, "__Host-oidc_abcd_tx_");
        assert_eq!(c.tx_path, "/");
        let c = codec(false);
        assert_eq!(c.session.name, "oidc_abcd_s");
    }

    #[test]
    fn seal_open_round_trip_and_binding_to_name() {
        let c = codec(false);
        let sealed = c.seal("a", "hello");
        assert_ne!(sealed, "hello");
        assert_eq!(c.open("a", &sealed).as_deref(), Some("hello"));
        assert_eq!(c.open("b", &sealed), None, "value moved to another cookie");
        let other = CookieCodec::new(vec![Key::from(&[8u8; 64])], false, "x", "/", "/auth");
        assert_eq!(other.open("a", &sealed), None, "foreign key");
    }

    #[test]
    fn rotation_opens_with_old_keys() {
        let old = codec(false);
        let sealed = old.seal("a", "v");
        let new = CookieCodec::new(
            vec![Key::from(&[9u8; 64]), Key::from(&[7u8; 64])],
            false,
            "oidc_abcd",
            "/",
            "/auth",
        );
        assert_eq!(new.open("a", &sealed).as_deref(), Some("v"));
        assert_eq!(old.open("a", &new.seal("a", "w")), None);
    }

    /// Found by issue 14: a session larger than the read limit was written in 18 chunks and
    /// read from at most 8. What fits is written and reads back; what does not writes nothing.
    #[test]
    fn only_what_can_be_read_is_written() {
        let c = codec(false);
        let mut out = Vec::new();
        let fits = "x".repeat(MAX_SEALED * 3 / 4 - 100);
        c.write_json(&c.session, &fits, 60, 0, &mut out).unwrap();
        assert_eq!(out.len(), MAX_CHUNKS);
        let header = out
            .iter()
            .map(|h| h.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, header.parse().unwrap());
        let read: String = c
            .read_json(&c.read(&headers), &c.session.name)
            .unwrap()
            .unwrap();
        assert_eq!(read, fits);

        let mut out = Vec::new();
        let too_large = "x".repeat(MAX_SEALED);
        let error = c
            .write_json(&c.session, &too_large, 60, 0, &mut out)
            .unwrap_err();
        assert!(out.is_empty(), "nothing written");
        assert!(error.sealed > MAX_SEALED);
        assert!(error.to_string().contains(&error.sealed.to_string()));
    }

    #[test]
    fn chunking_round_trip_and_leftovers() {
        let c = codec(false);
        let big = "x".repeat(9000);
        let mut out = Vec::new();
        c.write_json(&c.session, &big, 60, 5, &mut out).unwrap();
        // 9000 chars of JSON seal to ~12 KB: 4 chunks set, chunk 4 deleted.
        let sets: Vec<String> = out.iter().map(|h| h.to_str().unwrap().to_owned()).collect();
        assert_eq!(sets.len(), 5);
        assert!(sets[4].starts_with("oidc_abcd_s.4=;"));
        let header = sets[..4]
            .iter()
            .map(|s| s.split(';').next().unwrap())
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, header.parse().unwrap());
        let cookies = c.read(&headers);
        assert_eq!(cookies.chunk_count(&c.session.name), 4);
        let back: String = c.read_json(&cookies, &c.session.name).unwrap().unwrap();
        assert_eq!(back, big);
        for s in &sets[..4] {
            assert!(s.len() < 4096);
            assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax"));
        }
    }

    #[test]
    fn many_cookies_spill_past_the_inline_slots() {
        let header: Vec<String> = (0..12).map(|i| format!("oidc_c{i}=v{i}")).collect();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, header.join("; ").parse().unwrap());
        let c = RequestCookies::parse(&headers, "oidc_", "oidc_s");
        for i in 0..12 {
            assert_eq!(c.get(&format!("oidc_c{i}")), Some(format!("v{i}").as_str()));
        }
        assert_eq!(c.names_with_prefix("oidc_c1").count(), 3); // c1, c10, c11
    }

    #[test]
    fn tossed_cookies_never_crowd_out_the_session() {
        let c = codec(true);
        let flood: Vec<String> = (0..100)
            .map(|i| format!("__Secure-oidc_abcd_x{i}=1; __t{i}=1"))
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            format!("{}; __Host-oidc_abcd_s=sess", flood.join("; "))
                .parse()
                .unwrap(),
        );
        let cookies = c.read(&headers);
        assert_eq!(cookies.get("__Host-oidc_abcd_s"), Some("sess"));
        assert_eq!(cookies.get("__t1"), None, "not ours");
    }

    #[test]
    fn one_cookie_that_is_not_utf8_hides_only_itself() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_bytes(b"oidc_x=\xff\xfe; oidc_s=good").unwrap(),
        );
        let c = RequestCookies::parse(&headers, "oidc_", "oidc_s");
        assert_eq!(c.get("oidc_s"), Some("good"));
        assert_eq!(c.get("oidc_x"), None);
    }

    #[test]
    fn parse_ignores_garbage() {
        let mut headers = HeaderMap::new();
        headers.append(
            http::header::COOKIE,
            "a=1; ;; =; oidc_x=\"q\"; junk".parse().unwrap(),
        );
        headers.append(
            http::header::COOKIE,
            HeaderValue::from_bytes(b"oidc_y=\xff").unwrap(),
        );
        let c = RequestCookies::parse(&headers, "oidc_", "oidc_s");
        assert_eq!(c.get("oidc_x"), Some("q"));
        assert_eq!(c.get("a"), None);
        assert_eq!(c.get("oidc_y"), None);
    }
}
