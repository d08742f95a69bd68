//! ID tokens, back-channel logout tokens and IdP-initiated login tokens.

use serde_json::{Map, Value};

use super::*;

impl Verifier {
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
}
