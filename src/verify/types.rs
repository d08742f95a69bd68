//! What a verification decides: errors, purposes, and the verified token with its validity.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::claims::{Claims, Extras, LayerId};
use crate::refusal::Refusal;

/// Why a token was refused. Logged, never shown to the user in detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("token type {0:?} not accepted")]
    Type(String),
    #[error("algorithm {0:?} not allowed")]
    Algorithm(Algorithm),
    #[error("no published key matches the token")]
    UnknownKey,
    #[error("several keys match a token without kid")]
    AmbiguousKey,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("authorized party (azp) is not this client")]
    AuthorizedParty,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("nonce mismatch")]
    Nonce,
    #[error("ID token older than the allowed maximum age")]
    TooOld,
    #[error("at_hash does not match the access token")]
    AtHash,
    #[error("a logout token must not carry a nonce")]
    NonceInLogoutToken,
    #[error("logout token replayed")]
    Replayed,
    #[error("required claim {0} missing")]
    Missing(&'static str),
    #[error("the token has a `crit` header; no JOSE extension is understood here")]
    Critical,
    #[error("an ID token or a security event token (logout token) is not an access token")]
    NotAnAccessToken,
    #[error("the token was not issued for this client (no `aud` or `client_id` names it)")]
    NotForThisClient,
    #[error("an ID token or a logout token is not an IdP-initiated login token")]
    NotAnIdpLoginToken,
    #[error(
        "a machine-to-machine token without `aud` of a client this layer does not accept (see \
         `accept_m2m_clients`)"
    )]
    MachineClient,
    #[error("a machine-to-machine token is no user session")]
    MachineSession,
}

impl VerifyError {
    /// Why a token (a bearer token, or a session's access token) that failed this check is
    /// refused.
    pub(crate) fn refusal(&self) -> Refusal {
        match self {
            Self::Malformed | Self::Critical => Refusal::MalformedToken,
            Self::UnknownKey | Self::AmbiguousKey => Refusal::UnknownKid,
            Self::Signature => Refusal::BadSignature,
            Self::Issuer => Refusal::IssuerMismatch,
            Self::Audience
            | Self::AuthorizedParty
            | Self::NotForThisClient
            | Self::MachineClient => Refusal::AudienceMismatch,
            Self::Expired => Refusal::TokenExpired,
            other => Refusal::TokenRefused {
                check: other.check(),
            },
        }
    }

    /// The check that failed, as a closed set of names (for explaining a refusal).
    pub(crate) fn check(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Type(_) => "token_type",
            Self::Algorithm(_) => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::AmbiguousKey => "ambiguous_key",
            Self::Signature => "signature",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::AuthorizedParty => "authorized_party",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::Nonce | Self::NonceInLogoutToken => "nonce",
            Self::TooOld => "too_old",
            Self::AtHash => "at_hash",
            Self::Replayed => "replayed",
            Self::Missing(_) => "missing_claim",
            Self::Critical => "critical_header",
            Self::NotAnAccessToken => "not_an_access_token",
            Self::NotForThisClient => "not_for_this_client",
            Self::NotAnIdpLoginToken => "not_an_idp_login_token",
            Self::MachineClient => "machine_client",
            Self::MachineSession => "machine_token",
        }
    }
}

/// What a verified access token is presented as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The access token of a cookie session (from our own token endpoint, at login or refresh).
    Session,
    /// An `Authorization: Bearer` token, from anyone.
    Bearer,
}

/// Where a verified access token may be used: the one decision about audiences, clients and
/// machine tokens, made once per token when it is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A user's token that names this client or a configured audience: both.
    Both,
    /// A token that names no audience and no client: trusted only where it came from our own
    /// token endpoint in exchange for our own code or refresh token (a cookie session), never
    /// from an `Authorization` header.
    SessionOnly,
    /// A machine token (client credentials: `sub` = `client_id`) that names this client or a
    /// configured audience, or, without `aud`, belongs to an accepted M2M client: a bearer
    /// token, never a user session.
    BearerOnly,
}

impl Reach {
    pub(super) fn allows(self, purpose: Purpose) -> Result<(), VerifyError> {
        match (self, purpose) {
            (Reach::Both, _)
            | (Reach::SessionOnly, Purpose::Session)
            | (Reach::BearerOnly, Purpose::Bearer) => Ok(()),
            (Reach::SessionOnly, Purpose::Bearer) => Err(VerifyError::NotForThisClient),
            (Reach::BearerOnly, Purpose::Session) => Err(VerifyError::MachineSession),
        }
    }
}

/// What a verified Scalekit IdP-initiated login token (`idp_initiated_login`) asks for. The
/// claims are those of the docs (developer-docs `src/content/docs/sso/guides/idp-init-sso.mdx`,
/// "JWT token structure") and of the SDKs' `IdpInitiatedLoginClaims` (scalekit-sdk-node
/// `src/types/auth.ts`, scalekit-sdk-go `scalekit.go`): `organization_id`, `connection_id`,
/// `login_hint`, and an optional `relay_state`. An empty string counts as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IdpLogin {
    pub(crate) organization_id: Option<String>,
    pub(crate) connection_id: Option<String>,
    pub(crate) login_hint: Option<String>,
    pub(crate) relay_state: Option<String>,
}

/// A verified access token, as kept in the cache.
pub(crate) struct Verified {
    pub(crate) claims: Arc<Map<String, Value>>,
    pub(crate) exp: i64,
    /// Where the token may be used (see [`Verifier::access`]).
    pub(super) reach: Reach,
    pub(super) nbf: Option<i64>,
    /// Which published key verified it.
    pub(super) binding: KeyBinding,
    /// Claims merged with the session's identity claims, built once per token.
    pub(super) session_claims: OnceLock<Option<Claims>>,
    /// Claims of the token alone, for bearer use, built once per token.
    pub(super) bearer_claims: OnceLock<Option<Claims>>,
    /// The layer whose verifier made this.
    pub(super) layer: LayerId,
    /// Verified by a trusted issuer's verifier, not the layer's provider's.
    pub(super) foreign: bool,
}

/// How a token names its key (header `kid` and `alg`), and which key verified it (RFC 7638
/// thumbprint): a verification is relied on only while the JWKS still picks that very key for
/// the token.
pub(crate) struct KeyBinding {
    pub(super) kid: Option<Box<str>>,
    pub(super) alg: Algorithm,
    pub(super) thumbprint: Arc<str>,
    /// A JWKS generation at which that key was the one picked (read before looking): while it
    /// is current, one comparison says the key is still published.
    pub(super) generation: AtomicU64,
}

impl Verified {
    /// Expiry, not-before and the verifying key of the token, for remembering this
    /// verification elsewhere (the session cache) without the token or its claims.
    pub(crate) fn validity(&self) -> Validity {
        Validity {
            exp: self.exp,
            nbf: self.nbf,
            binding: KeyBinding {
                kid: self.binding.kid.clone(),
                alg: self.binding.alg,
                thumbprint: self.binding.thumbprint.clone(),
                generation: AtomicU64::new(self.binding.generation.load(Ordering::Relaxed)),
            },
        }
    }

    /// The claims for a cookie session: the access token's, with the ID token's identity claims
    /// filling the gaps. The identity claims are bound to this access token in the same encrypted
    /// cookie, so building this once per token is exact.
    pub(crate) fn session_claims(
        &self,
        identity: impl FnOnce() -> Option<Map<String, Value>>,
        extras: impl FnOnce() -> Extras,
    ) -> Option<Claims> {
        self.session_claims
            .get_or_init(|| {
                let mut merged = identity().unwrap_or_default();
                for (k, v) in self.claims.iter() {
                    merged.insert(k.clone(), v.clone());
                }
                Claims::from_map_with(merged, self.layer, extras())
            })
            .clone()
    }

    /// The claims of the token alone (bearer use: no session, no identity claims). Their token
    /// is the request's `Authorization` header.
    pub(crate) fn bearer_claims(&self) -> Option<Claims> {
        self.bearer_claims
            .get_or_init(|| {
                let extras = Extras {
                    token: crate::claims::TokenSource::Bearer,
                    app_data: None,
                    stored: None,
                    foreign_issuer: self.foreign,
                };
                Claims::from_map_with((*self.claims).clone(), self.layer, extras)
            })
            .clone()
    }
}

/// What makes a verified access token still good: its times and its verifying key. A few dozen
/// bytes, checked by [`Verifier::still_good`].
pub(crate) struct Validity {
    pub(crate) exp: i64,
    pub(super) nbf: Option<i64>,
    pub(super) binding: KeyBinding,
}
