//! `GET /auth/login`: start the Authorization Code flow with state, nonce and PKCE S256.
//!
//! The login route is also the app's Scalekit **Initiate Login URL**: Scalekit sends the
//! browser here with `?idp_initiated_login=<JWT>` when a login starts at the identity provider,
//! after an invitation is accepted or a password reset (developer-docs
//! `src/content/docs/sso/guides/idp-init-sso.mdx`, `guides/dashboard/redirects.mdx`), or with
//! `?error=...&error_description=...` ("Error callback format" in the same page).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;
use http::StatusCode;
use sha2::{Digest, Sha256};

use super::login_options::{SealedOptions, StepUp, SEALED_PARAM};
use super::loopback_move::loopback_alias;
use super::{param, query_params, read_index, Transaction, TX_ID_LEN};
use crate::responses::{error_page, redirect, ErrorPage, ErrorReason, Page};
use crate::return_to;
use crate::same_origin::is_same_origin;
use crate::state::Shared;
use crate::token::random_token;

/// The login parameters a caller may pass through `/auth/login?...` to the provider. A
/// `domain_hint` is also sent as `domain` (as Scalekit's SDKs do); `domain` is not accepted on
/// its own.
const PASS_THROUGH: &[&str] = &[
    "prompt",
    "login_hint",
    "organization_id",
    "connection_id",
    "domain_hint",
    "provider",
];

pub(crate) async fn login(shared: Arc<Shared>, parts: Parts) -> Page {
    let settings = &shared.settings;
    if let Some(there) = loopback_alias(&shared, &parts) {
        return redirect(&there, Vec::new());
    }
    // From a page of the app: here, or on another loopback name before the move brought it here.
    let from_app = is_same_origin(&parts.headers, &settings.origin)
        || super::loopback_move::moved_from_the_app(&shared, &parts);
    let query = super::loopback_move::query_without_sign(parts.uri.query());
    let params = match query_params(query.as_deref()) {
        Ok(p) => p,
        Err(reason) => {
            let page = ErrorPage::new(
                StatusCode::BAD_REQUEST,
                ErrorReason::BadLoginRequest,
                "Bad login request",
                reason,
                Some(&settings.login_path),
            );
            return error_page(
                &*shared.responses,
                &shared.settings.default_return,
                &page,
                Vec::new(),
            );
        }
    };
    // The provider reports a failure here instead of starting a login (idp-init-sso.mdx,
    // "Error callback format"). Its words are logged, never shown: anyone can put any text in
    // a link to this route.
    if let Some(error) = param(&params, "error") {
        let description = param(&params, "error_description").unwrap_or("");
        tracing::warn!(
            error = ?truncate(error, 64),
            description = ?truncate(description, 256),
            "the provider reported an error to the login route"
        );
        let (status, message) = match error {
            "access_denied" => (
                StatusCode::FORBIDDEN,
                "You cancelled the sign-in, or the identity provider did not allow it.",
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "The identity provider could not complete the sign-in.",
            ),
        };
        let page = ErrorPage {
            provider_error: Some(error),
            // Logged above, never shown: anyone can put any text in a link to this route.
            provider_error_description: None,
            ..ErrorPage::new(
                status,
                ErrorReason::ProviderError,
                crate::responses::provider_error_title(error),
                message,
                Some(&settings.login_path),
            )
        };
        return error_page(
            &*shared.responses,
            &shared.settings.default_return,
            &page,
            Vec::new(),
        );
    }

    // What the login asks the provider for: either the claims of a Scalekit IdP-initiated
    // login token, or plain parameters from the app's own pages.
    let mut requested: Vec<(&'static str, String)> = Vec::new();
    let mut step_up = StepUp::default();
    let return_to;
    match param(&params, "idp_initiated_login").filter(|t| !t.is_empty()) {
        Some(token) => {
            // Signed by the provider, so honoured from any site: it is how Scalekit starts
            // the login. The token is the whole request: plain parameters beside it are
            // ignored, and `relay_state` is only a return target, sanitised like `return_to`.
            let login = match shared.verifier.idp_initiated_login(token).await {
                Ok(login) => login,
                Err(error) => {
                    tracing::warn!(%error, "IdP-initiated login token refused");
                    let page = ErrorPage::new(
                        StatusCode::BAD_REQUEST,
                        ErrorReason::InvalidIdpLogin,
                        "Sign-in link not valid",
                        "This sign-in link is not valid or has expired. Start again from your \
                         identity provider, or sign in here.",
                        Some(&settings.login_path),
                    );
                    return error_page(
                        &*shared.responses,
                        &shared.settings.default_return,
                        &page,
                        Vec::new(),
                    );
                }
            };
            // Login CSRF: anyone can obtain such a token for an organization whose identity
            // provider they control, and send it to a victim. A browser without a session is
            // in the same place as with any IdP-initiated SSO; a signed-in user is asked before
            // a link from another site replaces their session.
            if !from_app && crate::session::has_session(&shared, &parts.headers) {
                tracing::debug!("cross-site IdP-initiated login over a session: asking first");
                return crate::responses::confirm_login(
                    &*shared.responses,
                    &settings.login_path,
                    ("idp_initiated_login", token),
                    &settings.default_return,
                );
            }
            return_to = login
                .relay_state
                .as_deref()
                .and_then(return_to::sanitize)
                .unwrap_or(&settings.default_return)
                .to_owned();
            for (name, value) in [
                ("organization_id", login.organization_id),
                ("connection_id", login.connection_id),
                ("login_hint", login.login_hint),
            ] {
                if let Some(v) = value {
                    requested.push((name, v));
                }
            }
        }
        None if param(&params, SEALED_PARAM).is_some() => {
            // Sealed by `AuthLayer::login_url` with the app's keys: the app's own choice, so
            // honoured from any site. Like the IdP-initiated token, it is the whole request:
            // plain parameters beside it are ignored.
            let sealed = param(&params, SEALED_PARAM).unwrap_or("");
            let Some(options) = SealedOptions::open(&shared.cookies, sealed) else {
                tracing::warn!("login link refused: its options are not sealed by this app");
                let page = ErrorPage::new(
                    StatusCode::BAD_REQUEST,
                    ErrorReason::BadLoginRequest,
                    "Sign-in link not valid",
                    "This sign-in link is damaged or was not made by this application. Sign \
                     in here, or ask for a new link.",
                    Some(&settings.login_path),
                );
                return error_page(
                    &*shared.responses,
                    &shared.settings.default_return,
                    &page,
                    Vec::new(),
                );
            };
            // Login CSRF again: anyone can get a sealed link the app made for them (switching to
            // their own organization, say) and send it to a victim. Options that choose a tenant
            // or an account replace a signed-in user's session only after asking; step-up
            // options only make a sign-in stricter and pass.
            if options.chooses_tenant()
                && !from_app
                && crate::session::has_session(&shared, &parts.headers)
            {
                tracing::debug!("cross-site login link choosing a tenant over a session: asking");
                return crate::responses::confirm_login(
                    &*shared.responses,
                    &settings.login_path,
                    (SEALED_PARAM, sealed),
                    &settings.default_return,
                );
            }
            return_to = options
                .return_to
                .as_deref()
                .and_then(return_to::sanitize)
                .unwrap_or(&settings.default_return)
                .to_owned();
            step_up = StepUp {
                max_age: options.max_age,
                acr_values: options.acr_values.clone(),
            };
            requested = options.pass_through();
        }
        None => {
            return_to = param(&params, "return_to")
                .and_then(return_to::sanitize)
                .unwrap_or(&settings.default_return)
                .to_owned();
            // Pass-through parameters choose the tenant or connection: a cross-site link must
            // not choose for the user (login CSRF into an attacker's organization). Only
            // requests from the app itself carry them.
            let same_origin = from_app;
            for name in PASS_THROUGH {
                let Some(v) = param(&params, name) else {
                    continue;
                };
                // `prompt=none` (a silent login, as the silent-login layer starts it) is
                // honoured from anywhere: it chooses no tenant and can only make a login
                // quieter.
                let silent = *name == "prompt" && v == "none";
                if !same_origin && !silent {
                    tracing::debug!(
                        param = name,
                        "cross-site login: pass-through parameter dropped"
                    );
                    continue;
                }
                requested.push((name, v.to_owned()));
            }
            if same_origin {
                step_up = StepUp {
                    max_age: param(&params, "max_age").and_then(|v| v.parse().ok()),
                    acr_values: param(&params, "acr_values").map(str::to_owned),
                };
            }
        }
    }
    start(&shared, &parts, &requested, &step_up, return_to).await
}

/// At most `max` bytes of `s`, cut at a character boundary (for logs).
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Redirects to the provider's authorization endpoint with fresh state, nonce and PKCE, the
/// `requested` parameters the app approves and the step-up asked for; remembers the attempt
/// (with the step-up it must check) in its transaction cookie. With pushed authorization
/// requests (RFC 9126), the parameters go to the provider first and the browser carries only
/// `client_id` and the `request_uri`; a failed push is the error page, with nothing set.
async fn start(
    shared: &Shared,
    parts: &Parts,
    requested: &[(&'static str, String)],
    step_up: &StepUp,
    return_to: String,
) -> Page {
    let settings = &shared.settings;
    let codec = &shared.cookies;
    let state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let now = shared.clock.now();
    // The step-up is not put to `approve_authorize_param`: a guard that asked for it would
    // send the user back here for ever if it were dropped. Only a usable `acr_values` is sent,
    // and only what is sent is checked at the callback.
    let acr_values = step_up
        .acr_values
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 512 && !v.chars().any(char::is_control))
        .map(str::to_owned);

    let mut silent = false;
    let mut authorize = match url::Url::parse(&shared.meta.authorization_endpoint) {
        Ok(u) => u,
        Err(_) => {
            let page = ErrorPage::new(
                StatusCode::BAD_GATEWAY,
                ErrorReason::AuthorizationEndpointUnusable,
                "Sign-in unavailable",
                "The identity provider's login address is not usable.",
                None,
            );
            return error_page(
                &*shared.responses,
                &shared.settings.default_return,
                &page,
                Vec::new(),
            );
        }
    };
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &settings.client_id),
        ("redirect_uri", &settings.redirect_url),
        ("scope", &settings.scope),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in &settings.authorize_params {
        params.push((k, v));
    }
    for (name, v) in requested {
        if v.is_empty() || v.len() > 512 || v.chars().any(char::is_control) {
            continue;
        }
        if let Some(approve) = &settings.approve_param {
            if !(approve.0)(name, v) {
                tracing::debug!(
                    param = name,
                    "authorization parameter not approved; dropped"
                );
                continue;
            }
        }
        params.push((name, v));
        silent |= *name == "prompt" && v == "none";
        // Scalekit's SDKs send a domain hint under both names (scalekit-sdk-node
        // `src/scalekit.ts` and scalekit-sdk-go `scalekit.go` `GetAuthorizationUrl`,
        // scalekit-sdk-java `ScalekitAuthClient.getAuthorizationUrl`); the SSO reference
        // documents only `domain`.
        if *name == "domain_hint" {
            params.push(("domain", v));
        }
    }
    let max_age = step_up.max_age.map(|m| m.to_string());
    if let Some(max_age) = &max_age {
        params.push(("max_age", max_age));
    }
    if let Some(acr) = &acr_values {
        params.push(("acr_values", acr));
    }
    match &shared.token.par_endpoint {
        None => {
            authorize.query_pairs_mut().extend_pairs(&params);
        }
        Some(endpoint) => match shared.token.push_authorization(endpoint, &params).await {
            // RFC 9126 section 4: the browser carries only the client and the request's URI.
            Ok(pushed) => {
                authorize
                    .query_pairs_mut()
                    .append_pair("client_id", &settings.client_id)
                    .append_pair("request_uri", &pushed.request_uri);
            }
            Err(error) => {
                tracing::warn!(
                    error = %crate::error::Chain(&error),
                    "pushed authorization request failed"
                );
                let (status, reason, message) =
                    super::provider_failure(&error, super::SignInCall::PushedRequest);
                let page = ErrorPage::new(
                    status,
                    reason,
                    "Sign-in unavailable",
                    message,
                    Some(&settings.login_path),
                );
                return error_page(
                    &*shared.responses,
                    &shared.settings.default_return,
                    &page,
                    Vec::new(),
                );
            }
        },
    }

    // One cookie per attempt, so logins started in several tabs all complete; the index lets
    // us drop the oldest when too many pile up.
    let cookies = codec.read(&parts.headers);
    let mut index = read_index(shared, &cookies);
    let id = state[..TX_ID_LEN].to_owned();
    let mut set_cookies = Vec::new();
    index.0.push((id.clone(), now));
    while index.0.len() > settings.max_login_attempts {
        let (old, _) = index.0.remove(0);
        set_cookies.push(codec.clear(&format!("{}{old}", codec.tx_prefix), &codec.tx_path));
    }
    let tx = Transaction {
        state,
        nonce,
        verifier,
        return_to,
        created: now,
        max_age: step_up.max_age,
        acr_values,
        silent,
    };
    let tx_slot = crate::cookies::Slot {
        name: format!("{}{id}", codec.tx_prefix),
        path: codec.tx_path.clone(),
    };
    // Both are small (a return path checked against the request, a few ids): within the limit.
    let _ = codec.write_json(&tx_slot, &tx, settings.login_timeout, 1, &mut set_cookies);
    let _ = codec.write_json(
        &codec.tx_index,
        &index,
        settings.login_timeout,
        cookies.chunk_count(&codec.tx_index.name),
        &mut set_cookies,
    );
    redirect(authorize.as_str(), set_cookies)
}
