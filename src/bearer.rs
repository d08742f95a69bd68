//! `Authorization: Bearer` requests: the token is verified like a session's access token, never
//! refreshed, and sets no cookies.

use std::sync::Arc;

use http::HeaderMap;

use crate::refusal::Refusal;
use crate::responses::{invalid_token, Client};
use crate::revocation::{is_revoked, SessionIds};
use crate::session::{Outcome, Resolution};
use crate::state::Shared;
use crate::verify::{Attempt, Purpose};

/// The token of an `Authorization: Bearer` header, if the request has exactly one such header.
/// `Some("")` for a Bearer header without a token (refused as invalid).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some("");
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks a bearer token without waiting (`Pending`: a JWKS refetch is needed).
/// A bearer token never refreshes and never sets cookies.
pub(crate) fn bearer_now(shared: &Shared, token: &str, client: Client) -> Resolution {
    let attempt = match shared.bearer_verifier(token) {
        Ok(verifier) => verifier.access_now(token, Purpose::Bearer),
        Err(error) => Attempt::Invalid(error),
    };
    bearer_outcome(shared, attempt, client)
}

/// Checks a bearer token, refetching the JWKS for an unknown key.
pub(crate) async fn bearer(shared: Arc<Shared>, token: String, client: Client) -> Outcome {
    let attempt = match shared.bearer_verifier(&token) {
        Ok(verifier) => Attempt::from(verifier.access(&token, Purpose::Bearer).await),
        Err(error) => Attempt::Invalid(error),
    };
    match bearer_outcome(&shared, attempt, client) {
        Resolution::Ready(outcome) => outcome,
        // Keys still missing after the refetch: anonymous.
        Resolution::Pending => Outcome::refused(Refusal::UnknownKid),
    }
}

fn bearer_outcome(shared: &Shared, attempt: Attempt, client: Client) -> Resolution {
    let invalid = |why: &dyn std::fmt::Display, refusal: Refusal| {
        tracing::debug!(reason = %why, "bearer token refused");
        let explain = shared.settings.explain_refusals;
        let page = invalid_token(&*shared.responses, client, refusal, explain);
        Resolution::Ready(Outcome::respond(page))
    };
    match attempt {
        Attempt::Valid(verified) => {
            // Whether the token may be a bearer token at all (a token naming no audience only
            // in a cookie session; a machine token only of an accepted client) was decided by
            // the verifier.
            let claims = verified.bearer_claims();
            let Some(claims) = claims else {
                return invalid(
                    &"claims unusable",
                    Refusal::TokenRefused { check: "claims" },
                );
            };
            let ids = SessionIds {
                sid: claims.sid.clone(),
                sub: Some(claims.sub.clone()),
                lid: None,
                login: claims.iat.unwrap_or(0),
            };
            // Revocations are kept per issuer: the verified token's (checked equal to the
            // issuer of the verifier that accepted it).
            let issuer = claims.iss.as_str();
            if is_revoked(shared.revocations.as_ref(), issuer, &ids) {
                let keys = crate::revocation::RevocationKeys::new(issuer, &ids);
                let at = keys
                    .revoked_at(shared.revocations.as_ref())
                    .unwrap_or_else(|| shared.clock.now());
                return invalid(&"session revoked", Refusal::Revoked { at });
            }
            Resolution::Ready(Outcome::with_claims(Some(claims)))
        }
        Attempt::NeedKeys(..) => Resolution::Pending,
        Attempt::Invalid(error) => invalid(&error, error.refusal()),
    }
}
