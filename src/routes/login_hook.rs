//! The app's login hook at the callback ([`crate::hooks`]): after the tokens are verified,
//! before any session cookie is written.

use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::hooks::{seal_app_data, LoginContext, LoginDecision};
use crate::responses::{
    error_page, grpc_status, json, Client, ErrorPage, ErrorReason, GrpcCode, Page,
};
use crate::session::SessionData;
use crate::state::Shared;
use crate::verify::{Attempt, Purpose};

/// Runs the login hook, if the app set one, on the sign-in about to become `session`. `Ok`:
/// go on (with the app data kept in `session`); `Err`: the answer, carrying `set_cookies` (the
/// used login attempt cleared), and no session.
pub(super) async fn run(
    shared: &Shared,
    parts: &Parts,
    id_claims: &Map<String, Value>,
    session: &mut SessionData,
    return_to: &str,
    retry: Option<&str>,
    set_cookies: &mut Vec<HeaderValue>,
) -> Result<(), Page> {
    let Some(hook) = &shared.settings.hooks.login else {
        return Ok(());
    };
    // The claims a request would see, with the ID token's whole claim set beneath: the hook
    // may need claims the session does not keep.
    let verified = match session.opaque {
        true => None,
        // Verified a moment ago: remembered.
        false => match shared.verifier.access_now(&session.at, Purpose::Session) {
            Attempt::Valid(v) => Some(v),
            _ => None,
        },
    };
    let Some((claims, access_token)) =
        session.hook_claims(shared, id_claims.clone(), verified.as_deref())
    else {
        return Err(failed(
            shared,
            "the verified claims have no subject",
            retry,
            set_cookies,
        ));
    };
    let sub = claims.sub.clone();
    let cx = LoginContext {
        claims,
        return_to: return_to.to_owned(),
        access_token,
    };
    match hook.run(cx, shared.settings.hooks.timeout).await {
        Ok(LoginDecision::Allow) => Ok(()),
        Ok(LoginDecision::AllowWith { app_data }) => match seal_app_data(&app_data) {
            Ok(raw) => {
                session.app = Some(raw);
                Ok(())
            }
            Err(error) => Err(failed(shared, &error, retry, set_cookies)),
        },
        Ok(LoginDecision::Deny { reason }) => {
            tracing::info!(sub = %sub, "sign-in refused by the app's login hook");
            Err(denied(shared, parts, &reason, set_cookies))
        }
        Err(error) => Err(failed(shared, &error, retry, set_cookies)),
    }
}

/// The hook refused the user: like a guard, a 403 page for a browser, JSON for a program; the
/// browser's session of this app, if it had one, is cleared.
fn denied(
    shared: &Shared,
    parts: &Parts,
    reason: &str,
    set_cookies: &mut Vec<HeaderValue>,
) -> Page {
    let mut cookies = std::mem::take(set_cookies);
    // A user the app refuses now is not left signed in by a session from before.
    let codec = &shared.cookies;
    let present = codec.read(&parts.headers);
    for slot in [&codec.session, &codec.id_token] {
        let chunks = present.chunk_count(&slot.name);
        if chunks > 0 {
            codec.clear_slot(slot, chunks, &mut cookies);
        }
    }
    match Client::of(&parts.method, &parts.headers) {
        Client::Browser => {
            let page = ErrorPage::new(
                StatusCode::FORBIDDEN,
                ErrorReason::LoginDenied,
                "Sign-in not allowed",
                reason,
                None,
            );
            error_page(
                &*shared.responses,
                &shared.settings.default_return,
                &page,
                cookies,
            )
        }
        other => {
            let mut resp = match other {
                Client::Grpc => {
                    grpc_status(GrpcCode::PermissionDenied, reason).map(http_body_util::Full::new)
                }
                _ => json(
                    StatusCode::FORBIDDEN,
                    serde_json::json!({"error": "login_denied", "message": reason}),
                ),
            };
            crate::responses::add_cookies(resp.headers_mut(), cookies);
            resp
        }
    }
}

/// The hook failed (an error, a panic, its time limit, app data over the limit): the sign-in
/// error page, logged with the cause.
fn failed(
    shared: &Shared,
    error: &str,
    retry: Option<&str>,
    set_cookies: &mut Vec<HeaderValue>,
) -> Page {
    tracing::error!(%error, "login hook; not signed in");
    let page = ErrorPage::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorReason::LoginHookFailed,
        "Sign-in failed",
        "The application could not complete your sign-in. Please try again in a moment.",
        retry,
    );
    error_page(
        &*shared.responses,
        &shared.settings.default_return,
        &page,
        std::mem::take(set_cookies),
    )
}
