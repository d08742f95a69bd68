//! `GET /auth/callback`: check state (and `iss`), exchange the code, verify the ID token, set
//! the session cookies.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, StatusCode};

use super::{param, query_params, read_index, Transaction, TX_ID_LEN};
use crate::cookies::Slot;
use crate::error::Chain;
use crate::responses::{error_page, redirect, ErrorPage, ErrorReason, Page};
use crate::revocation::SessionIds;
use crate::session::{classify_access, identity_claims, raw_json, SessionData, Tokens};
use crate::state::Shared;

pub(crate) async fn callback(shared: Arc<Shared>, parts: Parts) -> Page {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "oidc.callback",
        provider = %shared.meta.issuer,
        outcome = tracing::field::Empty,
        reason = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let page = complete(shared.clone(), parts)
        .instrument(span.clone())
        .await;
    let outcome = login_outcome(&page);
    span.record(
        "duration_ms",
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    if let Some(outcome) = outcome {
        span.record("outcome", outcome.label());
        crate::telemetry::login(outcome);
    }
    if let Some(reason) = page.extensions().get::<ErrorReason>() {
        span.record("reason", reason.as_str());
    }
    if outcome == Some(crate::telemetry::Login::Success) {
        shared.record_gauges();
    }
    page
}

/// Marks the answer of a completed sign-in.
#[derive(Clone, Copy)]
struct SignedIn;

/// How an error callback counts, decided from the provider's `error` and whether it answers a
/// login attempt of this browser (never from the status of the app's error page): a forged or
/// stale link is `invalid`, never the provider's failure or refusal.
#[derive(Clone, Copy)]
struct ErrorCallback(crate::telemetry::Login);

/// How a callback ended, from its answer: the sign-in's mark, or its error page's reason. A
/// silent login that the provider turned down (the user is needed) is neither: `None`.
fn login_outcome(page: &Page) -> Option<crate::telemetry::Login> {
    use crate::telemetry::Login;
    if page.extensions().get::<SignedIn>().is_some() {
        return Some(Login::Success);
    }
    if let Some(ErrorCallback(outcome)) = page.extensions().get::<ErrorCallback>() {
        return Some(*outcome);
    }
    let reason = *page.extensions().get::<ErrorReason>()?;
    Some(match reason {
        ErrorReason::LoginDenied => Login::Denied,
        ErrorReason::ProviderError
        | ErrorReason::ExchangeTimeout
        | ErrorReason::ExchangeFailed
        | ErrorReason::ClientRejected
        | ErrorReason::IdTokenMissing
        | ErrorReason::SessionTooLarge => Login::ProviderError,
        ErrorReason::LoginHookFailed | ErrorReason::SessionStoreUnavailable => Login::Error,
        _ => Login::Invalid,
    })
}

/// A completed sign-in: to where the login was going, with the session's cookies.
fn signed_in(return_to: &str, set_cookies: Vec<HeaderValue>) -> Page {
    let mut page = redirect(return_to, set_cookies);
    page.extensions_mut().insert(SignedIn);
    page
}

async fn complete(shared: Arc<Shared>, parts: Parts) -> Page {
    let settings = &shared.settings;
    let codec = &shared.cookies;
    let responses = &*shared.responses;
    let params = match query_params(parts.uri.query()) {
        Ok(p) => p,
        Err(reason) => {
            tracing::warn!(reason, "callback refused: bad query string");
            let page = ErrorPage::new(
                StatusCode::BAD_REQUEST,
                ErrorReason::MalformedResponse,
                "Sign-in failed",
                "The sign-in response was malformed.",
                Some(&settings.login_path),
            );
            return error_page(responses, &settings.default_return, &page, Vec::new());
        }
    };
    let cookies = codec.read(&parts.headers);
    let state = param(&params, "state").unwrap_or("");
    // Find this attempt's transaction cookie; every exit below deletes it, so a state is
    // used at most once.
    let tx_name = (state.len() > TX_ID_LEN && state.is_char_boundary(TX_ID_LEN))
        .then(|| format!("{}{}", codec.tx_prefix, &state[..TX_ID_LEN]));
    let mut set_cookies = Vec::new();
    let mut tx: Option<Transaction> = None;
    if let Some(name) = &tx_name {
        if cookies.get(name).is_some() {
            set_cookies.push(codec.clear(name, &codec.tx_path));
            let mut index = read_index(&shared, &cookies);
            index.0.retain(|(id, _)| id != &state[..TX_ID_LEN]);
            let present = cookies.chunk_count(&codec.tx_index.name);
            if index.0.is_empty() {
                codec.clear_slot(&codec.tx_index, present, &mut set_cookies);
            } else {
                // A few ids: always within the limit.
                let _ = codec.write_json(
                    &codec.tx_index,
                    &index,
                    settings.login_timeout,
                    present,
                    &mut set_cookies,
                );
            }
            tx = match codec.read_json::<Transaction>(&cookies, name) {
                Some(Ok(t)) if t.state == state => Some(t),
                _ => None,
            };
        }
    }

    // "Try again" starts a new login that returns where this one was going.
    let retry_url = match &tx {
        Some(t) if t.return_to != settings.default_return => {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &t.return_to)
                .finish();
            format!("{}?{q}", settings.login_path)
        }
        _ => settings.login_path.clone(),
    };
    let retry = Some(retry_url.as_str());
    let fail = |status, reason, title: &str, message: &str, cookies: Vec<HeaderValue>| {
        let page = ErrorPage::new(status, reason, title, message, retry);
        error_page(responses, &settings.default_return, &page, cookies)
    };
    let bad = |reason, title: &str, message: &str, cookies: Vec<HeaderValue>| {
        fail(StatusCode::BAD_REQUEST, reason, title, message, cookies)
    };

    if let Some(error) = param(&params, "error") {
        let description = param(&params, "error_description").unwrap_or("");
        // A silent login (prompt=none) that needs the user: back to the page, anonymously.
        // The silent-login layer's "tried" cookie keeps it from trying again (no loop).
        if let Some(tx) = tx.as_ref().filter(|t| t.silent) {
            if crate::silent::NEEDS_USER.contains(&error) {
                tracing::debug!(
                    error,
                    "silent login: the provider needs the user; anonymous"
                );
                return redirect(&tx.return_to, set_cookies);
            }
        }
        if error == "access_denied" {
            // The user cancelled, or the provider's policy said no: not a fault of the app.
            tracing::info!(
                error,
                description,
                "sign-in cancelled or denied at the provider"
            );
        } else {
            tracing::warn!(
                error,
                description,
                "provider returned an error to the callback"
            );
        }
        let (status, message) = match error {
            "access_denied" => (
                StatusCode::FORBIDDEN,
                "You cancelled the sign-in, or the identity provider did not allow it.",
            ),
            "server_error" => (
                StatusCode::BAD_GATEWAY,
                "The identity provider had an internal error.",
            ),
            "temporarily_unavailable" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity provider is temporarily unavailable.",
            ),
            "login_required"
            | "interaction_required"
            | "consent_required"
            | "account_selection_required" => (
                StatusCode::UNAUTHORIZED,
                "The identity provider needs you to sign in again.",
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "The identity provider refused the sign-in request.",
            ),
        };
        // The provider's words only for this browser's own login attempt: on any link
        // without one, the text would be whatever the link's author wrote.
        let own_attempt = tx
            .as_ref()
            .is_some_and(|t| shared.clock.now().saturating_sub(t.created) < settings.login_timeout);
        let page = ErrorPage {
            provider_error: Some(error),
            provider_error_description: own_attempt.then_some(description),
            ..ErrorPage::new(
                status,
                ErrorReason::ProviderError,
                crate::responses::provider_error_title(error),
                message,
                retry,
            )
        };
        let mut page = error_page(responses, &settings.default_return, &page, set_cookies);
        let outcome = match error {
            // Anyone can open this URL: not a provider's answer to a login of this browser.
            _ if !own_attempt => crate::telemetry::Login::Invalid,
            // The user cancelled, or the provider's policy said no.
            "access_denied" => crate::telemetry::Login::Denied,
            _ => crate::telemetry::Login::ProviderError,
        };
        page.extensions_mut().insert(ErrorCallback(outcome));
        return page;
    }

    // A stale or replayed callback (Back, then the same URL again) from someone who is signed
    // in: their session stands, so they go on to the app rather than to an error.
    let stale = tx
        .as_ref()
        .is_none_or(|tx| shared.clock.now().saturating_sub(tx.created) >= settings.login_timeout);
    if stale && crate::session::has_session(&shared, &parts.headers) {
        tracing::info!("stale or replayed callback from a signed-in browser: back to the app");
        return redirect(&settings.default_return, set_cookies);
    }
    let Some(tx) = tx else {
        tracing::warn!(
            has_state = !state.is_empty(),
            "callback refused: no matching login attempt (state mismatch, reused, or cookie missing)"
        );
        return bad(
            ErrorReason::UnknownAttempt,
            "Sign-in expired",
            "This sign-in attempt is unknown, already used or expired. Please start again.",
            set_cookies,
        );
    };
    let now = shared.clock.now();
    if now.saturating_sub(tx.created) >= settings.login_timeout {
        tracing::warn!("callback refused: login attempt expired");
        return bad(
            ErrorReason::AttemptExpired,
            "Sign-in expired",
            "This sign-in attempt took too long. Please start again.",
            set_cookies,
        );
    }
    // RFC 9207: the authorization response names its issuer.
    match param(&params, "iss") {
        Some(iss) if iss != shared.meta.issuer => {
            tracing::warn!(iss, expected = %shared.meta.issuer, "callback refused: iss mismatch");
            return bad(
                ErrorReason::IssuerMismatch,
                "Sign-in failed",
                "The response came from an unexpected issuer.",
                set_cookies,
            );
        }
        None if shared.meta.authorization_response_iss_parameter_supported => {
            tracing::warn!("callback refused: iss parameter missing");
            return bad(
                ErrorReason::IssuerMissing,
                "Sign-in failed",
                "The response did not name its issuer.",
                set_cookies,
            );
        }
        _ => {}
    }
    let Some(code) = param(&params, "code").filter(|c| !c.is_empty()) else {
        return bad(
            ErrorReason::CodeMissing,
            "Sign-in failed",
            "The sign-in response had no authorization code.",
            set_cookies,
        );
    };

    let tokens = match shared
        .token
        .exchange_code(code, &tx.verifier, &settings.redirect_url)
        .await
    {
        Ok(t) => t,
        Err(error) => {
            tracing::warn!(error = %Chain(&error), "code exchange failed");
            let (status, reason, message) =
                super::provider_failure(&error, super::SignInCall::CodeExchange);
            return fail(status, reason, "Sign-in failed", message, set_cookies);
        }
    };
    // A token that does not verify is a defect of the response (4xx); a token endpoint that
    // answers without an ID token is broken upstream (502).
    let token_defect = |set_cookies| {
        bad(
            ErrorReason::TokensInvalid,
            "Sign-in failed",
            "The identity provider's tokens could not be verified.",
            set_cookies,
        )
    };
    let Some(id_token) = tokens.id_token.as_deref() else {
        tracing::warn!("token response has no id_token");
        return fail(
            StatusCode::BAD_GATEWAY,
            ErrorReason::IdTokenMissing,
            "Sign-in failed",
            "The identity provider's response had no ID token.",
            set_cookies,
        );
    };
    let id_claims = match shared
        .verifier
        .id_token(id_token, Some(&tx.nonce), Some(&tokens.access_token))
        .await
    {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "ID token refused");
            return token_defect(set_cookies);
        }
    };
    // Step-up: the sign-in must be as recent and as strong as this login asked (nextjs-auth0
    // PR 2707: check the stored request at the callback; a provider may ignore it).
    let leeway = shared.verifier.leeway();
    if let Some(why) = crate::step_up::unmet(
        tx.max_age,
        tx.acr_values.as_deref(),
        &id_claims,
        leeway,
        now,
    ) {
        tracing::warn!(why, "sign-in refused: the requested step-up was not met");
        // "Try again" asks for the same step-up, and for a fresh sign-in (`prompt=login`).
        let mut again = crate::LoginOptions::new()
            .prompt("login")
            .return_to(tx.return_to.clone());
        again.max_age = tx.max_age.map(std::time::Duration::from_secs);
        again.acr_values = tx.acr_values.clone();
        let again = again.to_sealed_path(codec, &settings.login_path);
        let page = ErrorPage::new(
            StatusCode::UNAUTHORIZED,
            ErrorReason::StepUpNotMet,
            "Sign-in not strong enough",
            "The identity provider did not confirm the recent or stronger sign-in this page \
             needs. Please sign in again.",
            Some(&again),
        );
        return error_page(responses, &settings.default_return, &page, set_cookies);
    }
    let id_exp = id_claims.get("exp").and_then(serde_json::Value::as_i64);
    let (exp, opaque) = match classify_access(
        &shared,
        &tokens.access_token,
        tokens.expires_in(),
        id_exp,
        now,
    )
    .await
    {
        Ok(v) => v,
        Err(crate::verify::VerifyError::Audience) => {
            let help = crate::session::audience_help(&tokens.access_token);
            tracing::warn!(%help, "access token refused: audience not accepted");
            return bad(
                ErrorReason::AudienceNotAccepted,
                "Sign-in failed",
                &help,
                set_cookies,
            );
        }
        Err(error) => {
            tracing::warn!(%error, "access token refused");
            return token_defect(set_cookies);
        }
    };
    let identity = identity_claims(&id_claims, &settings.session_claims);
    let mut session = SessionData::from_tokens(
        Tokens {
            at: tokens.access_token,
            rt: tokens.refresh_token,
            exp,
            opaque,
        },
        raw_json(&serde_json::Value::Object(identity)),
        // The session begins when the provider issued its ID token (never later than now): the
        // provider's clock, like the times of its logouts (`occurred_at`, a logout token's
        // `iat`), so a logout right after sign-in ends it whatever the skew between the clocks.
        SessionIds::at_login(&id_claims, began_at(&id_claims, now)),
        now,
    );
    // A provider session ended here (back-channel logout, a webhook) may still answer a silent
    // sign-in with the same `sid`: a `sid` revocation ends the sessions that began no later than
    // it, and the session begins when the provider issued its ID token, so a code obtained
    // before the provider's logout and exchanged after it does not start a session. Such a
    // session would be refused and sent back to login: a loop. Say so once, and offer a sign-in
    // that asks for credentials. A later sign-in (a new ID token) is a new session.
    if crate::revocation::is_revoked(
        shared.revocations.as_ref(),
        &shared.meta.issuer,
        &session.ids,
    ) {
        tracing::warn!("sign-in into a provider session that was ended; not signed in");
        let fresh = format!("{}?prompt=login", settings.login_path);
        let page = ErrorPage::new(
            StatusCode::UNAUTHORIZED,
            ErrorReason::SessionEnded,
            "Signed out",
            "This sign-in belongs to a session that has been ended. Sign in again.",
            Some(&fresh),
        );
        return error_page(responses, &settings.default_return, &page, set_cookies);
    }
    if let Err(page) = super::login_hook::run(
        &shared,
        &parts,
        &id_claims,
        &mut session,
        &tx.return_to,
        retry,
        &mut set_cookies,
    )
    .await
    {
        return page;
    }
    let max_age = settings.session_max_age;
    if shared.store.is_some() {
        return stored_sign_in(
            &shared,
            &parts,
            session,
            id_token.to_owned(),
            &tx.return_to,
            set_cookies,
        )
        .await;
    }
    // Only what can be read back is written: a session too large for the cookies the layer
    // reads would send the user back to login on every request.
    if let Err(too_large) = codec.write_json(
        &codec.session,
        &session,
        max_age,
        cookies.chunk_count(&codec.session.name),
        &mut set_cookies,
    ) {
        tracing::error!(
            size = too_large.sealed,
            limit = crate::cookies::TooLarge::LIMIT,
            "session too large for its cookies ({too_large}); not signed in. Keep fewer \
             ID-token claims (`session_claims`) or ask the provider for smaller tokens"
        );
        let message = format!(
            "Your session is too large to be stored in this browser: {} bytes, more \
                 than the {} bytes the application can read back. The identity provider's \
                 tokens carry too much (for example, very many groups); please tell the \
                 application's administrator.",
            too_large.sealed,
            crate::cookies::TooLarge::LIMIT
        );
        let page = ErrorPage::new(
            StatusCode::BAD_GATEWAY,
            ErrorReason::SessionTooLarge,
            "Sign-in failed",
            &message,
            None,
        );
        return error_page(responses, &settings.default_return, &page, set_cookies);
    }
    let id_slot: &Slot = &codec.id_token;
    if let Err(too_large) = codec.write_json(
        id_slot,
        &id_token,
        max_age,
        cookies.chunk_count(&id_slot.name),
        &mut set_cookies,
    ) {
        // The ID token is only the logout hint: sign in without it (logout then asks the
        // provider without a hint).
        tracing::warn!(
            size = too_large.sealed,
            "ID token too large for its cookies ({too_large}); logout will send no hint"
        );
        codec.clear_slot(
            id_slot,
            cookies.chunk_count(&id_slot.name),
            &mut set_cookies,
        );
    }
    tracing::info!(
        sub = id_claims.get("sub").and_then(|s| s.as_str()).unwrap_or(""),
        "signed in"
    );
    signed_in(&tx.return_to, set_cookies)
}

/// Store mode: the session is saved in the store, and its cookie holds only its id. The ID
/// token (the logout hint) is kept in the record.
async fn stored_sign_in(
    shared: &Shared,
    parts: &Parts,
    mut session: SessionData,
    id_token: String,
    return_to: &str,
    mut set_cookies: Vec<http::HeaderValue>,
) -> Page {
    use crate::session::stored;
    let settings = &shared.settings;
    let now = shared.clock.now();
    let id = crate::session_store::SessionId::random();
    let mut meta = crate::session_store::SessionMeta::new(now);
    meta.user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(stored::USER_AGENT_MAX).collect());
    meta.ip = settings
        .client_ip
        .as_ref()
        .and_then(|read| (read.0)(parts))
        .map(|ip| ip.to_string());
    session.idt = Some(id_token);
    if let Err(error) = stored::save(shared, &id, &session, meta, now).await {
        tracing::error!(%error, "session store unavailable at sign-in; not signed in");
        let page = ErrorPage::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorReason::SessionStoreUnavailable,
            "Sign-in failed",
            "The application could not save your session just now. Please try again in a \
             moment.",
            Some(&settings.login_path),
        );
        return error_page(
            &*shared.responses,
            &settings.default_return,
            &page,
            set_cookies,
        );
    }
    let codec = &shared.cookies;
    let cookies = codec.read(&parts.headers);
    // A few dozen bytes: never too large. Any cookie-mode session or ID-token cookie of this
    // browser is cleared.
    let _ = stored::write_ref(
        shared,
        Some(&cookies),
        &id,
        settings.session_max_age,
        &mut set_cookies,
    );
    codec.clear_slot(
        &codec.id_token,
        cookies.chunk_count(&codec.id_token.name),
        &mut set_cookies,
    );
    tracing::info!(
        sub = session.ids.sub.as_deref().unwrap_or(""),
        "signed in (session in the store)"
    );
    signed_in(return_to, set_cookies)
}

/// When a session begins: its ID token's `iat` (the provider's clock), or now if that is later
/// or missing.
fn began_at(id_claims: &serde_json::Map<String, serde_json::Value>, now: i64) -> i64 {
    id_claims
        .get("iat")
        .and_then(|v| crate::verify::numeric_date(v).ok())
        .map_or(now, |iat| iat.min(now))
}
