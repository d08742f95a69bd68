//! Cookie names, paths, flags, AEAD encryption (the `cookie` crate's private jar), chunking, and
//! key rotation.
//!
//! Every value is sealed with AES-256-GCM under the cookie's base name as associated data, so a
//! value cannot be moved between cookies or between apps. Values larger than one cookie are split
//! after sealing into `name`, `name.1`, `name.2`, ... and joined before opening.

mod codec;
mod request;

pub(crate) use codec::{app_part, CookieCodec, Slot};
pub(crate) use request::RequestCookies;

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

pub(crate) fn chunk_name(name: &str, index: usize) -> String {
    if index == 0 {
        name.to_owned()
    } else {
        format!("{name}.{index}")
    }
}

#[cfg(test)]
mod tests;
