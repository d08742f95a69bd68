//! The layer's cookies as a request presents them.

use http::HeaderMap;

use super::MAX_CHUNKS;

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
