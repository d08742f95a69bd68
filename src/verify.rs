//! JWT validation: signature by the provider's keys, algorithm allow-list, iss, aud, time claims,
//! nonce; and a bounded cache of access tokens already verified.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::claims::{is_machine_token, Claims, LayerId};
use crate::clock::SharedClock;
use crate::config::M2mClients;
use crate::provider::{Jwks, KeyLookup};

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
    fn allows(self, purpose: Purpose) -> Result<(), VerifyError> {
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
    reach: Reach,
    nbf: Option<i64>,
    /// Which published key verified it.
    binding: KeyBinding,
    /// Claims merged with the session's identity claims, built once per token.
    session_claims: OnceLock<Option<Claims>>,
    /// Claims of the token alone, for bearer use, built once per token.
    bearer_claims: OnceLock<Option<Claims>>,
    /// The layer whose verifier made this.
    layer: LayerId,
}

/// How a token names its key (header `kid` and `alg`), and which key verified it (RFC 7638
/// thumbprint): a verification is relied on only while the JWKS still picks that very key for
/// the token.
pub(crate) struct KeyBinding {
    kid: Option<Box<str>>,
    alg: Algorithm,
    thumbprint: Arc<str>,
    /// A JWKS generation at which that key was the one picked (read before looking): while it
    /// is current, one comparison says the key is still published.
    generation: AtomicU64,
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
    ) -> Option<Claims> {
        self.session_claims
            .get_or_init(|| {
                let mut merged = identity().unwrap_or_default();
                for (k, v) in self.claims.iter() {
                    merged.insert(k.clone(), v.clone());
                }
                Claims::from_map(merged, self.layer)
            })
            .clone()
    }

    /// The claims of the token alone (bearer use: no session, no identity claims).
    pub(crate) fn bearer_claims(&self) -> Option<Claims> {
        self.bearer_claims
            .get_or_init(|| Claims::from_map((*self.claims).clone(), self.layer))
            .clone()
    }
}

/// What makes a verified access token still good: its times and its verifying key. A few dozen
/// bytes, checked by [`Verifier::still_good`].
pub(crate) struct Validity {
    pub(crate) exp: i64,
    nbf: Option<i64>,
    binding: KeyBinding,
}

/// Signature-memo entries per verified-token cache entry: the memo costs about 50 bytes an
/// entry where the cache costs kilobytes, so it covers ten times as many tokens (100,000 by
/// default, about 5 MB when full).
const MEMO_PER_CACHE_ENTRY: usize = 10;

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
    table: quick_cache::sync::Cache<TokenDigest, Arc<str>>,
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

/// What a synchronous verification attempt found.
#[must_use]
pub(crate) enum Attempt {
    Valid(Arc<Verified>),
    Invalid(VerifyError),
    /// An (async, rate-limited) JWKS refetch may help: the token names a key we do not have,
    /// or the key we have under its name did not verify it.
    NeedKeys(Option<String>, Algorithm, Refetch),
}

impl From<Result<Arc<Verified>, VerifyError>> for Attempt {
    /// The outcome of [`Verifier::access`], which already tried a refetch where one could help.
    fn from(result: Result<Arc<Verified>, VerifyError>) -> Self {
        match result {
            Ok(v) => Attempt::Valid(v),
            Err(e) => Attempt::Invalid(e),
        }
    }
}

impl Attempt {
    /// A valid token that may not be used for `purpose` becomes invalid.
    fn for_purpose(self, purpose: Purpose) -> Self {
        match self {
            Attempt::Valid(v) => match v.reach.allows(purpose) {
                Ok(()) => Attempt::Valid(v),
                Err(e) => Attempt::Invalid(e),
            },
            other => other,
        }
    }
}

/// Why a verification needs the key set fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refetch {
    /// No published key fits the token (or the keys are past the provider's max-age).
    Missing,
    /// The key we have for it did not verify the signature: the provider may have replaced the
    /// key material under that kid (or its only kid-less key).
    Replaced,
}

/// What tokens must say, and how much slack time claims get.
pub(crate) struct Expectations {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    /// Accepted access-token audiences besides the client id.
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: i64,
    pub(crate) id_token_max_age: i64,
}

pub(crate) struct Verifier {
    pub(crate) jwks: Jwks,
    issuer: String,
    client_id: String,
    audiences: Vec<String>,
    /// The M2M clients whose tokens without `aud` are accepted as bearer tokens (`None`: none).
    m2m_clients: Option<M2mClients>,
    leeway: i64,
    id_token_max_age: i64,
    clock: SharedClock,
    cache: quick_cache::sync::Cache<String, Arc<Verified>>,
    /// Which key verified which token, for tokens beyond the verified-token cache (see
    /// [`SignatureMemo`]).
    memo: SignatureMemo,
    /// The header `typ` access tokens must have, normalized (`None`: any of JWT's usual ones).
    access_typ: Option<String>,
    /// The identity of the layer this verifier serves; claims it makes carry it.
    layer: LayerId,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub(crate) fn new(
        jwks: Jwks,
        expect: Expectations,
        clock: SharedClock,
        cache_capacity: usize,
    ) -> Self {
        let Expectations {
            issuer,
            client_id,
            audiences,
            leeway,
            id_token_max_age,
        } = expect;
        Self {
            jwks,
            issuer,
            client_id,
            audiences,
            m2m_clients: None,
            leeway,
            id_token_max_age,
            clock,
            cache: quick_cache::sync::Cache::new(cache_capacity.max(1)),
            memo: SignatureMemo::new(cache_capacity.max(1).saturating_mul(MEMO_PER_CACHE_ENTRY)),
            access_typ: None,
            layer: LayerId::next(),
        }
    }

    /// Requires access tokens to carry this header `typ` (`at+jwt` and `application/at+jwt`
    /// are the same type, RFC 7515 section 4.1.9).
    pub(crate) fn with_access_typ(mut self, typ: Option<&str>) -> Self {
        self.access_typ = typ.map(normalize_typ);
        self
    }

    /// Accepts, as bearer tokens, machine tokens without `aud` of these clients of the issuer
    /// (see [`AuthConfig::accept_m2m_clients`](crate::AuthConfig::accept_m2m_clients)).
    pub(crate) fn with_m2m_clients(mut self, clients: Option<M2mClients>) -> Self {
        self.m2m_clients = clients;
        self
    }

    /// The layer this verifier serves.
    pub(crate) fn layer(&self) -> LayerId {
        self.layer
    }

    pub(crate) fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// How many tokens the signature memo holds.
    pub(crate) fn memo_len(&self) -> usize {
        self.memo.len()
    }

    /// Whether an earlier verification still holds: not expired (with leeway), and the key that
    /// verified it is still published.
    pub(crate) fn still_good(&self, v: &Validity, now: i64) -> bool {
        self.check_times(v.exp, v.nbf, now).is_ok() && self.binding_holds(&v.binding, now, false)
    }

    /// Whether a remembered verification's key may still be relied on, by the rules of a first
    /// verification: past the provider's max-age, a token without `kid` cannot tell a stale key
    /// from a new one, so it waits for the keys (unless they were just refetched:
    /// `allow_stale`); any other is served while the keys are revalidated in the background.
    /// Then the key must still be the one the key set picks for the token.
    fn binding_holds(&self, b: &KeyBinding, now: i64, allow_stale: bool) -> bool {
        if !allow_stale && b.kid.is_none() && self.jwks.is_stale() {
            return false;
        }
        self.jwks.revalidate_if_stale(now);
        self.key_still_published(b)
    }

    /// Whether the JWKS still picks, for the token, the key that verified it: not just a key
    /// with its kid (or, without kid, any key), but the same key material. While the key set
    /// is unchanged this is one comparison; after a change, one lookup, remembered.
    fn key_still_published(&self, b: &KeyBinding) -> bool {
        // Read before the lookup, so the key set looked at is at least this generation.
        let generation = self.jwks.generation();
        if b.generation.load(Ordering::Relaxed) == generation {
            return true;
        }
        if self.jwks.selects(b.kid.as_deref(), b.alg, &b.thumbprint) {
            b.generation.store(generation, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Verifies an access token without waiting: a cache hit costs no cryptography. A token
    /// that verifies but may not be used for `purpose` (see [`Reach`]) is invalid.
    pub(crate) fn access_now(&self, token: &str, purpose: Purpose) -> Attempt {
        self.attempt(token, false, purpose).for_purpose(purpose)
    }

    /// `allow_stale`: use keys past the provider's max-age (after a refetch was tried).
    ///
    /// Only bearer tokens use the verified-token cache: a session's verification is remembered,
    /// in a few dozen bytes, by the verified-session cache (`session_cache`), and a second copy
    /// keyed by the token (about 1 KB of key alone) would only double the memory of every
    /// session. Beyond the caches, the signature memo serves both.
    fn attempt(&self, token: &str, allow_stale: bool, purpose: Purpose) -> Attempt {
        let now = self.clock.now();
        let use_cache = purpose == Purpose::Bearer;
        if let Some(hit) = use_cache.then(|| self.cache.get(token)).flatten() {
            if let Err(e) = self.check_times(hit.exp, hit.nbf, now) {
                self.cache.remove(token);
                return Attempt::Invalid(e);
            }
            // Past the provider's max-age, a hit with a `kid` still serves, and the keys are
            // revalidated in the background: a withdrawn key is noticed without waiting for a
            // new token.
            if self.binding_holds(&hit.binding, now, allow_stale) {
                return Attempt::Valid(hit);
            }
            // The key that verified it was withdrawn or replaced, or cannot be told apart from
            // a new one yet: verify it afresh, as a first verification would.
            self.cache.remove(token);
        }
        let header = match parse_header(token) {
            Ok(h) => h,
            Err(e) => return Attempt::Invalid(e),
        };
        let typ = header.typ.as_deref().map(normalize_typ);
        let typ_ok = match (&self.access_typ, typ.as_deref()) {
            (Some(required), found) => found == Some(required.as_str()),
            (None, None | Some("jwt" | "at+jwt")) => true,
            (None, Some(_)) => false,
        };
        if !typ_ok {
            return Attempt::Invalid(VerifyError::Type(header.typ.unwrap_or_default()));
        }
        if !allow_stale {
            // Past the provider's max-age: a token without kid cannot tell a stale key from a
            // new one, so it waits for the keys; any other uses the stale ones while they are
            // revalidated in the background.
            if header.kid.is_none() && self.jwks.is_stale() {
                return Attempt::NeedKeys(header.kid, header.alg, Refetch::Missing);
            }
            self.jwks.revalidate_if_stale(now);
        }
        // Read before the lookup: a verification never claims a newer key set than it used.
        let generation = self.jwks.generation();
        match self.jwks.lookup(header.kid.as_deref(), header.alg) {
            KeyLookup::Found(key) => match self.decode_memoized(token, &key, header.alg) {
                Ok(claims) => match self.check_access(&claims, now) {
                    Ok((exp, nbf, reach)) => {
                        let verified = Arc::new(Verified {
                            claims: Arc::new(claims),
                            exp,
                            reach,
                            layer: self.layer,
                            nbf,
                            binding: KeyBinding {
                                kid: header.kid.map(String::into_boxed_str),
                                alg: header.alg,
                                thumbprint: key.thumbprint.clone(),
                                generation: AtomicU64::new(generation),
                            },
                            session_claims: OnceLock::new(),
                            bearer_claims: OnceLock::new(),
                        });
                        if use_cache {
                            self.cache.insert(token.to_owned(), verified.clone());
                        }
                        Attempt::Valid(verified)
                    }
                    Err(e) => Attempt::Invalid(e),
                },
                Err(VerifyError::Signature) if !allow_stale => {
                    Attempt::NeedKeys(header.kid, header.alg, Refetch::Replaced)
                }
                Err(e) => Attempt::Invalid(e),
            },
            KeyLookup::Unknown => Attempt::NeedKeys(header.kid, header.alg, Refetch::Missing),
            KeyLookup::WrongAlgorithm => Attempt::Invalid(VerifyError::Algorithm(header.alg)),
            KeyLookup::Ambiguous => Attempt::Invalid(VerifyError::AmbiguousKey),
        }
    }

    /// Verifies an access token, refetching the JWKS (rate-limited) for an unknown key. A
    /// token that verifies but may not be used for `purpose` (see [`Reach`]) is refused.
    pub(crate) async fn access(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<Arc<Verified>, VerifyError> {
        self.access_with(token, purpose, false).await
    }

    /// Like [`access`](Self::access), for a token that came straight from the token endpoint:
    /// its key is fetched regardless of the refetch rate limit.
    pub(crate) async fn access_from_token_endpoint(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<Arc<Verified>, VerifyError> {
        self.access_with(token, purpose, true).await
    }

    async fn access_with(
        &self,
        token: &str,
        purpose: Purpose,
        fresh: bool,
    ) -> Result<Arc<Verified>, VerifyError> {
        match self.access_now(token, purpose) {
            Attempt::Valid(v) => Ok(v),
            Attempt::Invalid(e) => Err(e),
            Attempt::NeedKeys(kid, alg, why) => {
                match why {
                    Refetch::Missing => {
                        self.jwks.refetch_for(kid.as_deref(), alg, fresh).await;
                    }
                    // No new key set (rate-limited, or the fetch failed): the signature stays
                    // bad, without verifying it again.
                    Refetch::Replaced if !self.jwks.refetch_replaced(fresh).await => {
                        return Err(VerifyError::Signature);
                    }
                    Refetch::Replaced => {}
                }
                match self.attempt(token, true, purpose).for_purpose(purpose) {
                    Attempt::Valid(v) => Ok(v),
                    Attempt::Invalid(e) => Err(e),
                    Attempt::NeedKeys(..) => Err(VerifyError::UnknownKey),
                }
            }
        }
    }

    /// Verifies a back-channel logout token (OpenID Connect Back-Channel Logout 1.0, 2.6).
    /// Returns its claims; the caller checks `jti` replay.
    pub(crate) async fn logout_token(
        &self,
        token: &str,
        max_age: i64,
    ) -> Result<Map<String, Value>, VerifyError> {
        let header = parse_header(token)?;
        if let Some(typ) = &header.typ {
            if !matches!(normalize_typ(typ).as_str(), "jwt" | "logout+jwt") {
                return Err(VerifyError::Type(typ.clone()));
            }
        }
        let claims = self.signed_claims(token, &header, false).await?;
        self.check_logout_claims(&claims, max_age, self.clock.now())?;
        Ok(claims)
    }

    /// Verifies a Scalekit IdP-initiated login token, the `idp_initiated_login` parameter
    /// Scalekit puts on the app's Initiate Login URL, and returns what it asks for.
    ///
    /// The rules come from the SDKs, which all verify this token like any token of the
    /// environment and nothing more: scalekit-sdk-node `src/scalekit.ts`
    /// (`getIdpInitiatedLoginClaims` -> `validateToken`: the environment's JWKS, `jose.jwtVerify`
    /// checking the signature, `exp` and `nbf`; issuer and audience only when the caller passes
    /// them, which the docs' examples never do), scalekit-sdk-go `scalekit.go` (`ValidateToken`:
    /// RS256, `exp` required), scalekit-sdk-python `scalekit/client.py` (`validate_token`:
    /// `verify_iss` and `verify_aud` off by default), scalekit-sdk-java `ScalekitAuthClient.java`
    /// (signature, `setRequireExpirationTime`). So, here:
    ///
    /// - the signature, by a key of the provider's JWKS, with this verifier's algorithm rules
    ///   (the allow-list and the JWK's key type; never `none` or HMAC), an unknown `kid` taking
    ///   the usual rate-limited refetch;
    /// - `exp` required, `nbf` and `iat` checked when present, all with the leeway;
    /// - no `iss` or `aud` check: the docs' example token carries `"iss": "https://b2b-app.com"`,
    ///   not the environment URL, and no `aud`; the environment's signature binds the token;
    /// - chosen here, where the sources are silent: the header `typ`, when present, must be
    ///   `JWT` (Scalekit's tokens say so; a `logout+jwt` or `at+jwt` is another kind of token);
    ///   an ID or logout token of the environment is refused (its markers: `nonce`, `at_hash`,
    ///   `c_hash`, `events`); and at least one of `organization_id`, `connection_id`,
    ///   `login_hint` must be there (the SDKs type all three as present strings), each a string.
    pub(crate) async fn idp_initiated_login(&self, token: &str) -> Result<IdpLogin, VerifyError> {
        let header = parse_header(token)?;
        if let Some(typ) = &header.typ {
            if normalize_typ(typ) != "jwt" {
                return Err(VerifyError::Type(typ.clone()));
            }
        }
        let claims = self.signed_claims(token, &header, false).await?;
        self.check_idp_login_claims(&claims, self.clock.now())
    }

    /// The claim checks of an IdP-initiated login token, after its signature (see
    /// [`idp_initiated_login`](Self::idp_initiated_login)). Pure.
    pub(crate) fn check_idp_login_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<IdpLogin, VerifyError> {
        // Other tokens of the environment are signed with the same keys. The IdP-initiated
        // login token of the docs carries no subject, client, session or scope: a token with
        // any of them (a user's or a machine's access token, perhaps with custom claims named
        // `organization_id`) is not one, whatever else it carries.
        const ACCESS_MARKERS: [&str; 6] = ["sub", "client_id", "azp", "sid", "scope", "scopes"];
        if looks_like_id_token(claims)
            || claims.contains_key("events")
            || ACCESS_MARKERS.iter().any(|k| claims.contains_key(*k))
        {
            return Err(VerifyError::NotAnIdpLoginToken);
        }
        // The docs' token names no audience; one that names another is someone else's.
        if claims.contains_key("aud") && !audiences(claims).contains(&self.client_id.as_str()) {
            return Err(VerifyError::Audience);
        }
        let times = Times::of(claims)?;
        self.check_times(times.exp()?, times.nbf, now)?;
        self.check_iat(times.iat, now)?;
        let text = |name: &str| -> Result<Option<String>, VerifyError> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(VerifyError::Malformed),
            }
        };
        let login = IdpLogin {
            organization_id: text("organization_id")?,
            connection_id: text("connection_id")?,
            login_hint: text("login_hint")?,
            relay_state: text("relay_state")?,
        };
        if login.organization_id.is_none()
            && login.connection_id.is_none()
            && login.login_hint.is_none()
        {
            return Err(VerifyError::Missing(
                "organization_id, connection_id or login_hint",
            ));
        }
        Ok(login)
    }

    /// The claim checks of a logout token (Back-Channel Logout 1.0, 2.6), after its signature.
    /// Pure: the fuzz targets call it on any JSON.
    pub(crate) fn check_logout_claims(
        &self,
        claims: &Map<String, Value>,
        max_age: i64,
        now: i64,
    ) -> Result<(), VerifyError> {
        if claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
            return Err(VerifyError::Issuer);
        }
        if !audiences(claims).contains(&self.client_id.as_str()) {
            return Err(VerifyError::Audience);
        }
        let times = Times::of(claims)?;
        let iat = times.iat.ok_or(VerifyError::Missing("iat"))?;
        self.check_iat(Some(iat), now)?;
        if now.saturating_sub(iat) > max_age.saturating_add(self.leeway) {
            return Err(VerifyError::TooOld);
        }
        if let Some(exp) = times.exp {
            self.check_times(exp, times.nbf, now)?;
        } else if times
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(VerifyError::NotYetValid);
        }
        claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
            .ok_or(VerifyError::Missing("jti"))?;
        let is_logout_event = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|e| e.get("http://schemas.openid.net/event/backchannel-logout"))
            .is_some_and(Value::is_object);
        if !is_logout_event {
            return Err(VerifyError::Missing("events"));
        }
        let sid = claims.get("sid").and_then(Value::as_str);
        let sub = claims.get("sub").and_then(Value::as_str);
        if sid.is_none() && sub.is_none() {
            return Err(VerifyError::Missing("sid or sub"));
        }
        if claims.contains_key("nonce") {
            return Err(VerifyError::NonceInLogoutToken);
        }
        Ok(())
    }

    /// After a refetch attempt: stale keys are used, and an unknown key is final.
    pub(crate) fn access_after_refetch(&self, token: &str, purpose: Purpose) -> Attempt {
        match self.attempt(token, true, purpose).for_purpose(purpose) {
            Attempt::NeedKeys(..) => Attempt::Invalid(VerifyError::UnknownKey),
            other => other,
        }
    }

    /// Verifies an ID token (OpenID Connect Core 3.1.3.7). `nonce`, when given, must match;
    /// `access_token`, when given, must match the `at_hash` claim if there is one; the token may
    /// not be older than the configured maximum age.
    pub(crate) async fn id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<Map<String, Value>, VerifyError> {
        let header = parse_header(token)?;
        if let Some(typ) = &header.typ {
            if normalize_typ(typ) != "jwt" {
                return Err(VerifyError::Type(typ.clone()));
            }
        }
        // ID tokens come straight from the token endpoint (at the callback or a refresh).
        let claims = self.signed_claims(token, &header, true).await?;
        let now = self.clock.now();
        if claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
            return Err(VerifyError::Issuer);
        }
        let aud = audiences(&claims);
        if !aud.contains(&self.client_id.as_str()) {
            return Err(VerifyError::Audience);
        }
        // Core 3.1.3.7 items 4 and 5.
        if let Some(azp) = claims.get("azp") {
            if azp.as_str() != Some(&self.client_id) {
                return Err(VerifyError::AuthorizedParty);
            }
        } else if aud.len() > 1 {
            return Err(VerifyError::AuthorizedParty);
        }
        required_str(&claims, "sub")?;
        let times = Times::of(&claims)?;
        let iat = times.iat.ok_or(VerifyError::Missing("iat"))?;
        self.check_times(times.exp()?, times.nbf, now)?;
        self.check_iat(Some(iat), now)?;
        if now.saturating_sub(iat) > self.id_token_max_age.saturating_add(self.leeway) {
            return Err(VerifyError::TooOld);
        }
        if let Some(expected) = nonce {
            if claims.get("nonce").and_then(Value::as_str) != Some(expected) {
                return Err(VerifyError::Nonce);
            }
        }
        if let (Some(at), Some(at_hash)) = (access_token, claims.get("at_hash")) {
            let expected = token_hash(header.alg, at);
            if at_hash.as_str() != Some(expected.as_str()) {
                return Err(VerifyError::AtHash);
            }
        }
        Ok(claims)
    }

    /// The claims of an ID or logout token, once its signature verifies by a published key. An
    /// unknown key waits for a (rate-limited, shared) refetch; keys past the provider's max-age
    /// serve while a background refetch revalidates them; a known key that does not verify the
    /// signature has the key set fetched again, since the provider may have replaced the key
    /// material under that kid. `fresh`: the token came straight from the token endpoint, and
    /// the refetch rate limit does not apply.
    async fn signed_claims(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        fresh: bool,
    ) -> Result<Map<String, Value>, VerifyError> {
        let (kid, alg) = (header.kid.as_deref(), header.alg);
        let key = match self.jwks.refetch_for(kid, alg, fresh).await {
            KeyLookup::Found(k) => k,
            KeyLookup::Unknown => return Err(VerifyError::UnknownKey),
            KeyLookup::WrongAlgorithm => return Err(VerifyError::Algorithm(alg)),
            KeyLookup::Ambiguous => return Err(VerifyError::AmbiguousKey),
        };
        match self.decode(token, &key.key, alg) {
            Err(VerifyError::Signature) if self.jwks.refetch_replaced(fresh).await => {
                match self.jwks.lookup(kid, alg) {
                    KeyLookup::Found(k) if k.thumbprint != key.thumbprint => {
                        self.decode(token, &k.key, alg)
                    }
                    _ => Err(VerifyError::Signature),
                }
            }
            other => other,
        }
    }

    /// The claims of an access token signed by `key`: without signature work when the memo
    /// says this very token was verified by this very key (same thumbprint) before; otherwise
    /// verified, and memoized on success. Every claim check still follows, by the caller.
    fn decode_memoized(
        &self,
        token: &str,
        key: &crate::provider::KeyEntry,
        alg: Algorithm,
    ) -> Result<Map<String, Value>, VerifyError> {
        let digest = TokenDigest::of(token);
        if self.memo.verified_by(&digest, &key.thumbprint) {
            return jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
                .map(|data| data.claims)
                .map_err(|_| VerifyError::Malformed);
        }
        let claims = self.decode(token, &key.key, alg)?;
        self.memo.insert(digest, key.thumbprint.clone());
        Ok(claims)
    }

    fn decode(
        &self,
        token: &str,
        key: &jsonwebtoken::DecodingKey,
        alg: Algorithm,
    ) -> Result<Map<String, Value>, VerifyError> {
        // Time, issuer and audience are checked by us (with the injectable clock); the library
        // checks the signature and that the algorithm fits the key.
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => VerifyError::Algorithm(alg),
                _ => VerifyError::Malformed,
            })
    }

    /// The claim checks of an access token. Returns `exp`, `nbf`, and where the token may be
    /// used ([`Reach`]).
    fn check_access(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<(i64, Option<i64>, Reach), VerifyError> {
        if claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
            return Err(VerifyError::Issuer);
        }
        // An ID token travels in front-channel URLs (`id_token_hint`) and lives longer than an
        // access token: it must never pass as one. Its markers: a nonce (every login of ours
        // sends one), the hashes that bind it to a code or access token, Keycloak's `typ: ID`.
        // `auth_time` alone is no marker: Keycloak's access tokens carry it.
        // A logout token is a security event token: its `events` claim tells it apart from an
        // access token (RFC 8417, section 2.2; Back-Channel Logout 1.0, section 2.4).
        if looks_like_id_token(claims) || claims.contains_key("events") {
            return Err(VerifyError::NotAnAccessToken);
        }
        let aud = audiences(claims);
        let ours = |a: &&str| *a == self.client_id || self.audiences.iter().any(|x| x == a);
        // A machine token (client credentials) is never a user session, wherever it came from.
        let machine = is_machine_token(claims);
        let named = if aud.is_empty() {
            // Some providers (Scalekit among them) may issue access tokens without `aud` but with
            // the `client_id` they were issued to; others name no audience at all.
            match claims.get("client_id") {
                None => false,
                Some(id) if id.as_str() == Some(&self.client_id) => true,
                // Scalekit's M2M tokens name no audience unless their client was registered
                // with one: the app says which clients of its environment it accepts.
                Some(Value::String(id)) if machine => {
                    if !self.m2m_clients.as_ref().is_some_and(|m| m.accepts(id)) {
                        return Err(VerifyError::MachineClient);
                    }
                    true
                }
                Some(_) => return Err(VerifyError::Audience),
            }
        } else if aud.iter().any(ours) {
            true
        } else {
            // A token that names an audience must name one of ours, M2M tokens included.
            return Err(VerifyError::Audience);
        };
        let reach = if machine {
            Reach::BearerOnly
        } else if named {
            Reach::Both
        } else {
            Reach::SessionOnly
        };
        required_str(claims, "sub")?;
        let times = Times::of(claims)?;
        let (exp, nbf) = (times.exp()?, times.nbf);
        self.check_times(exp, nbf, now)?;
        self.check_iat(times.iat, now)?;
        Ok((exp, nbf, reach))
    }

    /// The access-token claim checks alone (fuzz targets).
    pub(crate) fn check_claims_for_fuzzing(&self, claims: &Map<String, Value>) -> bool {
        self.check_access(claims, self.clock.now()).is_ok()
    }

    fn check_iat(&self, iat: Option<i64>, now: i64) -> Result<(), VerifyError> {
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(VerifyError::IssuedInFuture);
        }
        Ok(())
    }

    fn check_times(&self, exp: i64, nbf: Option<i64>, now: i64) -> Result<(), VerifyError> {
        if now >= exp.saturating_add(self.leeway) {
            return Err(VerifyError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }
}

/// Whether a claim set carries a marker only ID tokens have: `nonce`, `at_hash`, `c_hash`, or
/// Keycloak's `typ: ID`. The access path refuses such tokens; an ID token without any marker
/// (possible at a refresh) is never used where it could leak (see the refresh).
pub(crate) fn looks_like_id_token(claims: &Map<String, Value>) -> bool {
    ["nonce", "at_hash", "c_hash"]
        .iter()
        .any(|k| claims.contains_key(*k))
        || claims
            .get("typ")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("id"))
}

/// The JOSE header, refusing what this verifier does not understand: a `crit` header names
/// extensions the recipient must process (RFC 7515, section 4.1.11), and none is supported.
fn parse_header(token: &str) -> Result<jsonwebtoken::Header, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.crit.is_some() {
        return Err(VerifyError::Critical);
    }
    Ok(header)
}

/// A `typ` value compared the way RFC 7515 section 4.1.9 says: without case, and without the
/// `application/` prefix.
fn normalize_typ(typ: &str) -> String {
    let t = typ.to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => t,
    }
}

/// Whether a token is a JWS in compact form, whatever its algorithm (`none` included): three
/// dot-separated parts whose first is a base64url JSON object. Such a token must verify; only a
/// token that is not JWT-shaped is opaque to us.
pub(crate) fn is_jwt_shaped(token: &str) -> bool {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .is_some()
}

/// The audiences a token names, read without verification: for messages about a token whose
/// signature was already checked.
pub(crate) fn unverified_audiences(token: &str) -> Vec<String> {
    jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
        .map(|d| {
            audiences(&d.claims)
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `at_hash`: the left half of the access token's hash with the ID token's algorithm's hash
/// function, base64url (OpenID Connect Core 3.1.3.6; SHA-512 for EdDSA with Ed25519).
fn token_hash(alg: Algorithm, token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use sha2::Digest;
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => {
            sha2::Sha384::digest(token.as_bytes()).to_vec()
        }
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => {
            sha2::Sha512::digest(token.as_bytes()).to_vec()
        }
        _ => sha2::Sha256::digest(token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// The time claims of a token, read the same way for every kind of token: each present one
/// must be a NumericDate. A present claim that is not (a string, an object) makes the token
/// malformed; it is never skipped as if it were absent. `null` counts as absent.
struct Times {
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
}

impl Times {
    fn of(claims: &Map<String, Value>) -> Result<Self, VerifyError> {
        let read = |name: &str| {
            claims
                .get(name)
                .filter(|v| !v.is_null())
                .map(numeric_date)
                .transpose()
        };
        Ok(Self {
            exp: read("exp")?,
            nbf: read("nbf")?,
            iat: read("iat")?,
        })
    }

    fn exp(&self) -> Result<i64, VerifyError> {
        self.exp.ok_or(VerifyError::Missing("exp"))
    }
}

/// A NumericDate (RFC 7519, section 2): seconds since the epoch, possibly with a fraction,
/// which is dropped. Anything else is malformed.
pub(crate) fn numeric_date(v: &Value) -> Result<i64, VerifyError> {
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    match v.as_f64() {
        // `as` saturates for finite values out of range.
        Some(f) if f.is_finite() => Ok(f.floor() as i64),
        _ => Err(VerifyError::Malformed),
    }
}

fn required_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(VerifyError::Missing(name))
}

fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::{Attempt, Purpose, TokenDigest, VerifyError};
    use crate::testing::TestProvider;
    use crate::Clock;
    use serde_json::json;

    /// A token whose signature part is replaced: it would never verify.
    fn with_bad_signature(token: &str) -> String {
        let (signed, _) = token.rsplit_once('.').unwrap();
        format!("{signed}.AAAA")
    }

    #[tokio::test]
    async fn signature_memo_is_written_only_by_a_verification_and_read_only_for_its_key() {
        let clock = crate::ManualClock::starting_now();
        let p = TestProvider::builder().clock(clock.clone()).start().await;
        let auth = p
            .layer_builder("http://127.0.0.1:1/auth/callback")
            .verified_cache_capacity(1)
            .build()
            .await
            .unwrap();
        let v = &auth.shared.verifier;
        let now = clock.now();
        let claims = json!({"iss": p.issuer(), "aud": "test-client", "sub": "s", "iat": now,
                            "exp": now + 300});
        let good = p.sign(&claims);
        let forged = with_bad_signature(&good);

        // A token that does not verify leaves no entry, however often it is sent.
        for _ in 0..2 {
            assert!(matches!(
                v.access(&forged, Purpose::Bearer).await,
                Err(VerifyError::Signature)
            ));
        }
        assert_eq!(v.memo_len(), 0);
        // One that verifies leaves one; pushed out of the verified-token cache (capacity 1), it
        // is still valid through the memo.
        assert!(v.access(&good, Purpose::Bearer).await.is_ok());
        assert_eq!(v.memo_len(), 1);
        let other = p.sign(&json!({"iss": p.issuer(), "aud": "test-client", "sub": "t",
                                   "iat": now, "exp": now + 300}));
        assert!(v.access(&other, Purpose::Bearer).await.is_ok());
        assert!(matches!(
            v.access_now(&good, Purpose::Bearer),
            Attempt::Valid(_)
        ));

        // The memo is read only for the key the JWKS picks now: an entry naming another key
        // (thumbprint) is ignored, and the forged token's signature is checked and refused.
        v.memo
            .insert(TokenDigest::of(&forged), "another-key".into());
        assert!(matches!(
            v.access_now(&forged, Purpose::Bearer),
            Attempt::NeedKeys(..) | Attempt::Invalid(VerifyError::Signature)
        ));

        // A memo hit skips only the signature: an expired token is refused all the same.
        clock.advance(std::time::Duration::from_secs(300 + 61));
        v.cache.clear();
        assert!(matches!(
            v.access_now(&good, Purpose::Bearer),
            Attempt::Invalid(VerifyError::Expired)
        ));
    }

    #[tokio::test]
    async fn id_token_checks() {
        let clock = crate::ManualClock::starting_now();
        let p = TestProvider::builder().clock(clock.clone()).start().await;
        let auth = p
            .layer_builder("http://127.0.0.1:1/auth/callback")
            .build()
            .await
            .unwrap();
        let v = &auth.shared.verifier;
        let now = clock.now();
        let base = json!({"iss": p.issuer(), "aud": "test-client", "sub": "s", "iat": now,
                          "exp": now + 300, "nonce": "n1"});
        let with = |patch: serde_json::Value| {
            let mut c = base.clone();
            for (k, val) in patch.as_object().unwrap() {
                c[k] = val.clone();
            }
            p.sign(&c)
        };
        assert!(v.id_token(&with(json!({})), Some("n1"), None).await.is_ok());
        let cases = [
            (with(json!({})), Some("other"), VerifyError::Nonce),
            (with(json!({"nonce": null})), Some("n1"), VerifyError::Nonce),
            (with(json!({"aud": "x"})), Some("n1"), VerifyError::Audience),
            (
                with(json!({"aud": ["test-client", "x"]})),
                Some("n1"),
                VerifyError::AuthorizedParty,
            ),
            (
                with(json!({"azp": "x"})),
                Some("n1"),
                VerifyError::AuthorizedParty,
            ),
            (
                with(json!({"iss": "https://x"})),
                Some("n1"),
                VerifyError::Issuer,
            ),
            (
                with(json!({"iat": null})),
                Some("n1"),
                VerifyError::Missing("iat"),
            ),
            (
                with(json!({"iat": now + 61})),
                Some("n1"),
                VerifyError::IssuedInFuture,
            ),
            (
                with(json!({"exp": now - 61})),
                Some("n1"),
                VerifyError::Expired,
            ),
            (
                with(json!({"sub": null})),
                Some("n1"),
                VerifyError::Missing("sub"),
            ),
        ];
        for (token, nonce, expected) in cases {
            assert_eq!(v.id_token(&token, nonce, None).await.unwrap_err(), expected);
        }
        let ok = with(json!({"aud": ["test-client", "x"], "azp": "test-client"}));
        assert!(v.id_token(&ok, Some("n1"), None).await.is_ok());
        // at_hash: RS256 -> left half of SHA-256, base64url.
        let at = "access-token-value";
        let good = with(json!({"at_hash": super::token_hash(jsonwebtoken::Algorithm::RS256, at)}));
        assert!(v.id_token(&good, Some("n1"), Some(at)).await.is_ok());
        assert_eq!(
            v.id_token(&good, Some("n1"), Some("another"))
                .await
                .unwrap_err(),
            VerifyError::AtHash
        );
        assert_eq!(
            super::token_hash(jsonwebtoken::Algorithm::RS256, at).len(),
            22
        );
        assert_eq!(
            super::token_hash(jsonwebtoken::Algorithm::ES384, at).len(),
            32
        );
    }

    /// Scalekit IdP-initiated login tokens: each refusal for its own reason. Claims shaped after
    /// developer-docs `sso/guides/idp-init-sso.mdx` ("JWT token structure").
    #[tokio::test]
    async fn idp_login_checks() {
        let clock = crate::ManualClock::starting_now();
        let p = TestProvider::builder().clock(clock.clone()).start().await;
        let auth = p
            .layer_builder("http://127.0.0.1:1/auth/callback")
            .build()
            .await
            .unwrap();
        let v = &auth.shared.verifier;
        let now = clock.now();
        let base = json!({"organization_id": "org_1", "connection_id": "conn_1",
                          "login_hint": "a@b.c", "relay_state": "/x", "exp": now + 300,
                          "nbf": now, "iat": now, "iss": "https://b2b-app.com"});
        let with = |patch: serde_json::Value| {
            let mut c = base.clone();
            for (k, val) in patch.as_object().unwrap() {
                if val.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = val.clone();
                }
            }
            p.sign(&c)
        };
        let ok = v.idp_initiated_login(&with(json!({}))).await.unwrap();
        assert_eq!(ok.organization_id.as_deref(), Some("org_1"));
        assert_eq!(ok.relay_state.as_deref(), Some("/x"));
        // Only a login hint; empty strings count as absent; fractional NumericDates.
        let hint_only = with(json!({"organization_id": "", "connection_id": null,
                                    "exp": (now + 300) as f64 + 0.5}));
        let got = v.idp_initiated_login(&hint_only).await.unwrap();
        assert_eq!(got.organization_id, None);
        assert_eq!(got.login_hint.as_deref(), Some("a@b.c"));
        let cases = [
            (with(json!({"exp": null})), VerifyError::Missing("exp")),
            (with(json!({"exp": "soon"})), VerifyError::Malformed),
            (with(json!({"nbf": [1]})), VerifyError::Malformed),
            (with(json!({"exp": now - 61})), VerifyError::Expired),
            (with(json!({"nbf": now + 61})), VerifyError::NotYetValid),
            (with(json!({"iat": now + 61})), VerifyError::IssuedInFuture),
            (with(json!({"organization_id": 7})), VerifyError::Malformed),
            (
                with(json!({"relay_state": {"a": 1}})),
                VerifyError::Malformed,
            ),
            (
                with(json!({"organization_id": null, "connection_id": null, "login_hint": null})),
                VerifyError::Missing("organization_id, connection_id or login_hint"),
            ),
            (with(json!({"nonce": "n"})), VerifyError::NotAnIdpLoginToken),
            (with(json!({"events": {}})), VerifyError::NotAnIdpLoginToken),
            (
                p.sign_with_header(
                    &json!({"alg": "RS256", "typ": "at+jwt", "kid": p.current_kid()}),
                    &base,
                ),
                VerifyError::Type("at+jwt".into()),
            ),
            (
                p.sign_with_header(
                    &json!({"alg": "HS256", "typ": "JWT", "kid": p.current_kid()}),
                    &base,
                ),
                VerifyError::Algorithm(jsonwebtoken::Algorithm::HS256),
            ),
            (
                p.sign_with_unpublished_key(
                    &json!({"alg": "RS256", "typ": "JWT", "kid": p.current_kid()}),
                    &base,
                ),
                VerifyError::Signature,
            ),
            (
                p.sign_with_unpublished_key(
                    &json!({"alg": "RS256", "typ": "JWT", "kid": "other"}),
                    &base,
                ),
                VerifyError::UnknownKey,
            ),
            ("e30.e30.".to_owned(), VerifyError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(v.idp_initiated_login(&token).await.unwrap_err(), expected);
        }
    }

    /// The one decision about audiences, clients and machine tokens, for each purpose. The M2M
    /// shape is developer-docs `authenticate/m2m/api-auth-quickstart.mdx`, step 6 "Example
    /// decoded access token" (no `aud`, `sub` = `client_id` = `m2morg_...`, `scopes`).
    #[tokio::test]
    async fn reach_of_access_tokens() {
        use crate::M2mClients;
        let clock = crate::ManualClock::starting_now();
        let p = TestProvider::builder().clock(clock.clone()).start().await;
        let now = clock.now();
        let m2m = |client: &str| {
            json!({"client_id": client, "exp": now + 3600, "iat": now, "iss": p.issuer(),
                   "jti": "tkn_69041163914445100", "nbf": now, "oid": "org_59615193906282635",
                   "scopes": ["deploy:applications"], "sub": client})
        };
        let user = |patch: serde_json::Value| {
            let mut c = json!({"iss": p.issuer(), "sub": "usr_1", "exp": now + 300});
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let with = |mut c: serde_json::Value, k: &str, v: serde_json::Value| {
            c[k] = v;
            c
        };
        let a = "m2morg_69038819013296423";
        let b = "m2morg_68315758685323697";
        use super::Reach::{BearerOnly, Both, SessionOnly};
        use VerifyError::{Audience, MachineClient};
        // (policy, claims, expected reach or error)
        let cases: Vec<(
            Option<M2mClients>,
            serde_json::Value,
            Result<super::Reach, VerifyError>,
        )> = vec![
            (None, m2m(a), Err(MachineClient)),
            (Some(M2mClients::Any), m2m(a), Ok(BearerOnly)),
            (Some(M2mClients::only([a])), m2m(a), Ok(BearerOnly)),
            (Some(M2mClients::only([b])), m2m(a), Err(MachineClient)),
            // With an audience, the audience decides, opt-in or not; still never a session.
            (
                None,
                with(m2m(a), "aud", json!(["https://api.example.com"])),
                Ok(BearerOnly),
            ),
            (
                Some(M2mClients::only([b])),
                with(m2m(a), "aud", json!(["https://api.example.com"])),
                Ok(BearerOnly),
            ),
            (
                Some(M2mClients::Any),
                with(m2m(a), "aud", json!(["https://other.example"])),
                Err(Audience),
            ),
            // The app's own client-credentials token names this client.
            (None, m2m("test-client"), Ok(BearerOnly)),
            // Users.
            (
                Some(M2mClients::Any),
                user(json!({"aud": ["test-client"]})),
                Ok(Both),
            ),
            (
                Some(M2mClients::Any),
                user(json!({"client_id": "test-client"})),
                Ok(Both),
            ),
            (Some(M2mClients::Any), user(json!({})), Ok(SessionOnly)),
            (
                Some(M2mClients::Any),
                user(json!({"client_id": a})),
                Err(Audience),
            ),
            (
                Some(M2mClients::Any),
                user(json!({"aud": "https://api.example.com", "client_id": a})),
                Ok(Both),
            ),
        ];
        for (policy, claims, expected) in cases {
            let mut config = p
                .layer_builder("http://127.0.0.1:1/auth/callback")
                .audience("https://api.example.com");
            if let Some(policy) = policy.clone() {
                config = config.accept_m2m_clients(policy);
            }
            let auth = config.build().await.unwrap();
            let v = &auth.shared.verifier;
            let got = v
                .check_access(claims.as_object().unwrap(), now)
                .map(|r| r.2);
            assert_eq!(got, expected, "{policy:?} {claims}");
            let token = p.sign(&claims);
            let (session, bearer) = (
                v.access(&token, Purpose::Session).await.map(|_| ()),
                v.access(&token, Purpose::Bearer).await.map(|_| ()),
            );
            let (want_session, want_bearer) = match expected {
                Ok(Both) => (Ok(()), Ok(())),
                Ok(SessionOnly) => (Ok(()), Err(VerifyError::NotForThisClient)),
                Ok(BearerOnly) => (Err(VerifyError::MachineSession), Ok(())),
                Err(e) => (Err(e.clone()), Err(e)),
            };
            assert_eq!((session, bearer), (want_session, want_bearer), "{claims}");
        }
    }

    #[tokio::test]
    async fn cache_never_serves_expired_tokens() {
        let clock = crate::ManualClock::starting_now();
        let p = TestProvider::builder().clock(clock.clone()).start().await;
        let auth = p
            .layer_builder("http://127.0.0.1:1/auth/callback")
            .leeway(std::time::Duration::from_secs(0))
            .build()
            .await
            .unwrap();
        let v = &auth.shared.verifier;
        let now = clock.now();
        let t =
            p.sign(&json!({"iss": p.issuer(), "aud": "test-client", "sub": "s", "exp": now + 10}));
        assert!(v.access(&t, Purpose::Bearer).await.is_ok());
        assert!(v.access(&t, Purpose::Bearer).await.is_ok(), "cache hit");
        clock.advance(std::time::Duration::from_secs(10));
        assert_eq!(
            v.access(&t, Purpose::Bearer).await.err(),
            Some(VerifyError::Expired)
        );
    }
}
