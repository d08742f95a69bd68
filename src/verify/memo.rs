//! The signature memo: tokens whose signature verified, by a digest, with the verifying key.

use std::sync::Arc;

/// Signature-memo entries per verified-token cache entry: the memo costs about 50 bytes an
/// entry where the cache costs kilobytes, so it covers ten times as many tokens (100,000 by
/// default, about 5 MB when full).
pub(super) const MEMO_PER_CACHE_ENTRY: usize = 10;

/// A token's identity in the signature memo: SHA-256 of the whole compact token, truncated to
/// 128 bits. A second preimage (another token with the same digest) costs about 2^128 work, so a
/// digest stands for exactly one token; a 64-bit hash would not (collisions can be forged).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenDigest([u8; 16]);

impl TokenDigest {
    pub(crate) fn of(token: &str) -> Self {
        use sha2::Digest;
        let full = sha2::Sha256::digest(token.as_bytes());
        let mut digest = [0; 16];
        digest.copy_from_slice(&full[..16]);
        Self(digest)
    }
}

/// Which published key (RFC 7638 thumbprint) verified the signature of which access token: a
/// bounded table of a few dozen bytes per token, so that tokens beyond the verified-token cache
/// (more sessions or bearer tokens than it holds) cost no signature work when seen again.
///
/// An entry is made only after a signature verified, by the verifier itself; nothing a client
/// sends can create one. It remembers the signature and nothing else: every use still parses
/// the token and checks every claim (expiry, issuer, audience, type) against the clock, and is
/// honoured only while the key set still picks, for the token's own `kid` and `alg`, the key
/// with that thumbprint (a withdrawn or replaced key makes it worthless).
pub(crate) struct SignatureMemo {
    pub(super) table: quick_cache::sync::Cache<TokenDigest, Arc<str>>,
}

impl SignatureMemo {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            table: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// Whether the key with `thumbprint` verified the token with this digest.
    pub(crate) fn verified_by(&self, digest: &TokenDigest, thumbprint: &str) -> bool {
        self.table
            .get(digest)
            .is_some_and(|t| t.as_ref() == thumbprint)
    }

    /// Records a verification (the thumbprint is shared with the key set's, not copied).
    pub(crate) fn insert(&self, digest: TokenDigest, thumbprint: Arc<str>) {
        self.table.insert(digest, thumbprint);
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}
