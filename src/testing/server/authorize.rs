//! The authorize endpoint: its checks, the login form and single sign-on.
//!
//! Single sign-on follows OIDC Core 3.1.2.1:
//! - A browser with the provider's session cookie gets a code without interaction, unless the
//!   request says `prompt=login`, its `max_age` is shorter than the time since the session's
//!   `auth_time`, or its `acr_values` ask for another `acr` than the session's. Then the user
//!   authenticates again: the configured user at once (a new session with `auth_time` now),
//!   or through the form.
//! - `prompt=none` never shows the form and never signs the configured user in (that stands
//!   for an interactive login): without a usable session the answer is `error=login_required`
//!   at the redirect URI (3.1.2.6).
//! - An authentication asked for with `acr_values` gets the first value as its `acr`; the
//!   session keeps it for later single sign-on answers.

use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;

use super::request::{check_authorize, redirect_target};
use super::{oauth_error, Params};
use crate::responses::escape;
use crate::testing::{Authn, CodeGrant, SsoSession, State, TestUser, SSO_COOKIE};
use crate::token::random_token;

/// The browser's single sign-on session at the provider, from its cookie.
pub(super) fn sso_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SSO_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Starts a single sign-on session for `user`, who just authenticated for `client` as `p`
/// asked (its `acr_values`); returns its cookie id, `sid` and the authentication.
pub(super) fn start_sso(
    s: &State,
    user: TestUser,
    client: String,
    p: &Params,
) -> (String, String, Authn) {
    let id = random_token();
    let sid = format!("sid-{}", &random_token()[..16]);
    let authn = Authn::now(&s.clock, p.get("acr_values").map(String::as_str));
    s.sso.lock().expect("sso lock").insert(
        id.clone(),
        SsoSession {
            user,
            sid: sid.clone(),
            clients: [client].into_iter().collect(),
            authn: authn.clone(),
        },
    );
    (id, sid, authn)
}

pub(super) fn issue_code(
    s: &State,
    p: &Params,
    user: TestUser,
    sid: String,
    authn: Authn,
    set_sso: Option<&str>,
) -> Response {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let code = random_token();
    s.issued.lock().expect("issued lock").push(code.clone());
    s.codes.lock().expect("codes lock").insert(
        code.clone(),
        CodeGrant {
            client: get("client_id"),
            user,
            redirect_uri: get("redirect_uri"),
            nonce: p.get("nonce").cloned(),
            challenge: get("code_challenge"),
            scope: get("scope"),
            sid,
            created: s.clock.now(),
            authn,
        },
    );
    let Some(mut target) = redirect_target(&get("redirect_uri")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "redirect_uri");
    };
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = p.get("state") {
            q.append_pair("state", state);
        }
        if s.iss_param {
            q.append_pair("iss", &s.issuer);
        }
    }
    let mut resp = Redirect::to(target.as_str()).into_response();
    if let Some(id) = set_sso {
        let cookie = format!("{SSO_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax");
        if let Ok(v) = header::HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub(super) async fn authorize(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let was_pushed = p.contains_key("request_uri");
    let p = match super::par::resolve(&s, p) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    if let Err(resp) = check_authorize(&s, &p) {
        return *resp;
    }
    let client = p.get("client_id").cloned().unwrap_or_default();
    let prompt = p.get("prompt").map(String::as_str).unwrap_or("");
    let silent = prompt.split(' ').any(|x| x == "none");
    let force_login = prompt.split(' ').any(|x| x == "login");
    // Single sign-on: a browser signed in at the provider gets a code without a form, when its
    // authentication is recent enough and of the class asked for.
    if !force_login {
        if let Some(id) = sso_cookie(&headers) {
            let now = s.clock.now();
            let max_age = p.get("max_age").and_then(|m| m.parse::<i64>().ok());
            let acr = crate::testing::state::first_acr(p.get("acr_values").map(String::as_str));
            let known = {
                let mut sso = s.sso.lock().expect("sso lock");
                sso.get_mut(&id)
                    .filter(|session| {
                        let fresh = max_age
                            .is_none_or(|m| now.saturating_sub(session.authn.auth_time) <= m);
                        fresh && (acr.is_none() || acr == session.authn.acr)
                    })
                    .map(|session| {
                        session.clients.insert(client.clone());
                        (
                            session.user.clone(),
                            session.sid.clone(),
                            session.authn.clone(),
                        )
                    })
            };
            if let Some((user, sid, authn)) = known {
                return issue_code(&s, &p, user, sid, authn, None);
            }
        }
    }
    if silent {
        // No usable session, and no interaction allowed (OIDC Core 3.1.2.6).
        return error_redirect(
            &s,
            &p,
            "login_required",
            "The user must sign in; prompt=none forbids it.",
        );
    }
    let user = s.user.lock().expect("user lock").clone();
    if let Some(user) = user {
        let (id, sid, authn) = start_sso(&s, user.clone(), client, &p);
        return issue_code(&s, &p, user, sid, authn, Some(&id));
    }
    // The login form posts the request back. A pushed one stays pushed: the form carries a new
    // one-time `request_uri` for it, so the post is resolved (and, when PAR is required,
    // refused without one) exactly as a query is.
    let form_params: Params = if was_pushed {
        let client = p.get("client_id").cloned().unwrap_or_default();
        let uri = super::par::remember(&s, client.clone(), p.clone());
        Params::from([
            ("client_id".to_owned(), client),
            ("request_uri".to_owned(), uri),
        ])
    } else {
        p.clone()
    };
    let hidden: String = form_params
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(k),
                escape(v)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in \u{2013} test provider</title><style>{FORM_STYLE}</style></head><body><main>\
         <h1>Sign in to the test provider</h1>\
         <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
         <label>Login <input name=\"login\" autocomplete=\"username\" autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" \
         autocomplete=\"current-password\"></label>\
         <p class=\"actions\"><button type=\"submit\">Sign in</button> \
         <button type=\"submit\" name=\"cancel\" value=\"1\" class=\"secondary\" \
         formnovalidate>Cancel</button></p></form>\
         <p class=\"hint\">Any login and any non-empty password work. Cancel sends the app \
         <code>error=access_denied</code>, as a real provider does.</p></main></body></html>"
    ))
    .into_response()
}

/// The login form's answer to a post without a login or a password.
fn missing_credentials() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>Sign in \u{2013} test provider</title><style>{FORM_STYLE}</style>\
                 </head><body><main><h1>Sign in to the test provider</h1>\
                 <p>Login and password are required. Go back and try again.</p>\
                 </main></body></html>"
        )),
    )
        .into_response()
}
/// The look of the login form: plain, light or dark as the system prefers.
const FORM_STYLE: &str = "\
:root{color-scheme:light dark}*{box-sizing:border-box}\
body{margin:0;padding:10vh 1rem 2rem;font:16px/1.55 system-ui,sans-serif}\
main{max-width:27rem;margin:0 auto;padding:2rem;border:1px solid #8884;border-radius:12px}\
h1{font-size:1.35rem;margin:0 0 1.25rem}\
label{display:block;margin:0 0 1rem;font-weight:600}\
input{display:block;width:100%;margin-top:.35rem;padding:.5rem;font:inherit;font-weight:400}\
.actions{display:flex;gap:.75rem;margin:1.5rem 0 1rem}\
button{font:inherit;font-weight:600;padding:.5rem 1.1rem;border-radius:8px;cursor:pointer;\
border:1px solid #0969da;background:#0969da;color:#fff}\
button.secondary{background:transparent;color:inherit;border-color:#8888}\
.hint{font-size:.9rem;opacity:.75}";

/// The user pressed Cancel on the login form: back to the app's redirect URI with
/// `error=access_denied`.
fn cancelled(s: &State, p: &Params) -> Response {
    error_redirect(s, p, "access_denied", "The user cancelled the sign-in.")
}

/// An error answer at the app's redirect URI, with the request's `state` (RFC 6749 section
/// 4.1.2.1), and `iss` when the provider sends it (RFC 9207).
fn error_redirect(s: &State, p: &Params, error: &str, description: &str) -> Response {
    let Some(mut target) = p.get("redirect_uri").and_then(|u| redirect_target(u)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "redirect_uri");
    };
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("error", error)
            .append_pair("error_description", description);
        if let Some(state) = p.get("state") {
            q.append_pair("state", state);
        }
        if s.iss_param {
            q.append_pair("iss", &s.issuer);
        }
    }
    Redirect::to(target.as_str()).into_response()
}

pub(super) async fn login_form_post(
    AxState(s): AxState<Arc<State>>,
    Form(mut p): Form<Params>,
) -> Response {
    // The user's answer, apart from the authorization request it answers, which is resolved
    // like a query's (a pushed one by its `request_uri`).
    let answer: Vec<(String, String)> = ["login", "password", "cancel"]
        .iter()
        .filter_map(|k| p.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect();
    let given = |k: &str| answer.iter().any(|(n, v)| n == k && !v.trim().is_empty());
    if !answer.iter().any(|(n, _)| n == "cancel") && (!given("login") || !given("password")) {
        // Asked again before the request is resolved: a pushed one's `request_uri` stays
        // unused, so going back and trying again works.
        return missing_credentials();
    }
    let mut p = match super::par::resolve(&s, p) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    p.extend(answer);
    if let Err(resp) = check_authorize(&s, &p) {
        return *resp;
    }
    if p.contains_key("cancel") {
        return cancelled(&s, &p);
    }
    let login = p
        .get("login")
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    let password = p.get("password").cloned().unwrap_or_default();
    if login.is_empty() || password.is_empty() {
        return missing_credentials();
    }
    let user = TestUser::new(login.clone())
        .email(login.clone())
        .name(login);
    let client = p.get("client_id").cloned().unwrap_or_default();
    let (id, sid, authn) = start_sso(&s, user.clone(), client, &p);
    issue_code(&s, &p, user, sid, authn, Some(&id))
}
