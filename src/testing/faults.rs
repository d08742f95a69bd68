//! What tests make the provider do wrong, and what it counts.

use std::time::Duration;

/// How the token endpoint (or the JWKS or PAR endpoint) misbehaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Failure {
    /// Answer with this HTTP status and an OAuth `server_error` body.
    Status(u16),
    /// Answer `400 {"error": ...}` with this OAuth error code.
    OAuthError(String),
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Answer 200 with a body that is not JSON.
    NotJson,
    /// Answer 200 with a JSON body of this many bytes.
    Oversized(usize),
    /// Answer 200 with JSON cut off in the middle.
    Truncated,
}

/// Counters of what the provider served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Authorization codes exchanged.
    pub code_grants: u64,
    /// Refresh grants served (successful ones).
    pub refresh_grants: u64,
    /// Refresh grants refused.
    pub refresh_failures: u64,
    /// JWKS fetches.
    pub jwks_fetches: u64,
    /// Discovery fetches.
    pub discovery_fetches: u64,
    /// End-session visits.
    pub logouts: u64,
    /// Requests that reached the token endpoint (counted on arrival, before any failure).
    pub token_requests: u64,
    /// Back-channel logout tokens delivered (answered 2xx).
    pub backchannel_deliveries: u64,
    /// Back-channel logout deliveries that failed.
    pub backchannel_failures: u64,
    /// Requests that reached the revocation endpoint (RFC 7009; counted on arrival).
    pub revocation_requests: u64,
    /// Refresh tokens revoked there (by an authenticated client, for a token of that client).
    pub refresh_tokens_revoked: u64,
    /// Client assertions accepted (`private_key_jwt`, RFC 7523) at any endpoint.
    pub client_assertions: u64,
    /// `client_credentials` grants served.
    pub client_credentials_grants: u64,
    /// Requests that reached the pushed authorization request endpoint (RFC 9126).
    pub par_requests: u64,
    /// Pushed requests resolved by the authorize endpoint (`request_uri`).
    pub pushed_requests_used: u64,
}

/// One defect the provider puts into the ID tokens it issues (for adversarial tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdTokenDefect {
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256, keyed with the published public key.
    Hs256WithPublicKey,
    /// Signed by a key that is not published.
    UnknownKey,
    /// No `kid` in the header (refused when several keys are published).
    NoKid,
    /// Another `iss`.
    WrongIssuer,
    /// Another `aud`.
    WrongAudience,
    /// Several audiences and no `azp`.
    SeveralAudiencesWithoutAzp,
    /// `azp` names another client.
    AzpMismatch,
    /// Expired an hour ago.
    Expired,
    /// Issued a week ago (but not expired).
    IssuedLongAgo,
    /// Issued an hour from now.
    IssuedInFuture,
    /// No `nonce`.
    MissingNonce,
    /// Another `nonce`.
    WrongNonce,
    /// `at_hash` of another access token.
    AtHashMismatch,
    /// No `sub`.
    MissingSub,
    /// A JOSE `crit` header naming an extension (RFC 7515, section 4.1.11).
    CriticalHeader,
}

/// One defect the provider puts into the access tokens it issues (for adversarial tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessTokenDefect {
    /// A JWT with `alg: none` and no signature.
    AlgNone,
    /// Signed, with an `aud` that is neither the client id nor a configured audience.
    WrongAudience,
    /// Signed, with neither `aud` nor `client_id` (as oauth2-mock-server issues them).
    NoAudience,
    /// Signed by a key that is not published.
    UnknownKey,
}
