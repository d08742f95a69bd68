//! Calls the app's [`Responses`] and enforces, on whatever it returns, what the layer's answers
//! must keep: the layer's cookies, `no-store`, the challenge of a 401, `Retry-After`, and
//! unframeable confirmation pages.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;

use super::context::{
    Client, ConfirmContext, ErrorPage, ForbiddenContext, InvalidTokenContext, StepUpContext,
    UnauthenticatedContext, UnavailableContext,
};
use super::hook::Responses;
use super::render::{unframeable, INVALID_TOKEN_CHALLENGE, RETRY_AFTER_SECS};
use super::{add_cookies, no_store_at_cdns, Page};
use crate::refusal::Refusal;

/// The response to a request that needs a session and has none. The cookies clearing a dead
/// session are added by the layer's service around the app, like those of any response.
pub(crate) fn unauthenticated(
    hook: &dyn Responses,
    client: Client,
    login_path: &str,
    return_to: &str,
    refusal: &Refusal,
    explain: bool,
) -> Page {
    crate::telemetry::rejection(refusal.code());
    let target = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    let login_url = format!("{login_path}?{target}");
    let cx = UnauthenticatedContext {
        client,
        login_url: &login_url,
        return_to,
        refusal: explain.then_some(refusal),
    };
    let mut resp = hook.unauthenticated(&cx);
    challenge(&mut resp, "Bearer");
    explained(&mut resp, cx.refusal);
    finish(resp)
}

/// Adds the `x-auth-refusal` header to an explained refusal. A reason whose text is not plain
/// visible ASCII (a role name outside ASCII, a control character), or that could read as more
/// than one value (`,`, `;`, quotes: a name taken from the request), is given by its code
/// alone.
fn explained<B>(resp: &mut Response<B>, refusal: Option<&Refusal>) {
    let Some(refusal) = refusal else {
        return;
    };
    let text = refusal.to_string();
    let plain = text
        .bytes()
        .all(|b| (b == b' ' || b.is_ascii_graphic()) && !b",;\"\\".contains(&b));
    let value = plain
        .then(|| HeaderValue::from_str(&text).ok())
        .flatten()
        .unwrap_or_else(|| HeaderValue::from_static(refusal.code()));
    resp.headers_mut()
        .insert(crate::refusal::REFUSAL_HEADER, value);
}

/// With refusals explained: a refusal the app made itself (a [`Forbidden`](crate::Forbidden)
/// returned by a handler carries its `Refusal` as a response extension) gets the header too,
/// as long as it is still a refusal (401 or 403: an app that turned it into a 404 to hide a
/// resource keeps it hidden).
pub(crate) fn explain_app_refusal<B>(resp: &mut Response<B>) {
    let refused = matches!(
        resp.status(),
        http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN
    );
    if !refused || resp.headers().contains_key(crate::refusal::REFUSAL_HEADER) {
        return;
    }
    let refusal = resp.extensions().get::<Refusal>().cloned();
    explained(resp, refusal.as_ref());
}

/// The response to a request whose sign-in is not recent or strong enough: a 401 of the hook's
/// carries the RFC 9470 challenge.
pub(crate) fn step_up(hook: &dyn Responses, cx: &StepUpContext<'_>) -> Page {
    crate::telemetry::rejection(Refusal::StepUpRequired.code());
    let mut resp = hook.step_up(cx);
    if resp.status() == StatusCode::UNAUTHORIZED
        && !resp.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        let challenge = crate::step_up::challenge(cx.max_age, cx.acr_values);
        let value = HeaderValue::from_str(&challenge)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    explained(&mut resp, cx.refusal);
    finish(resp)
}

/// The response to a request whose session lacks what a guard requires.
pub(crate) fn forbidden(
    hook: &dyn Responses,
    home: &str,
    client: Client,
    what: &str,
    explain: bool,
) -> Page {
    let refusal = Refusal::of_guard(what);
    crate::telemetry::rejection(refusal.code());
    let cx = ForbiddenContext {
        client,
        what,
        home,
        refusal: explain.then_some(&refusal),
    };
    let mut resp = hook.forbidden(&cx);
    explained(&mut resp, cx.refusal);
    finish(resp)
}

/// A sign-in error page, with the layer's cookies (a used login attempt cleared).
pub(crate) fn error_page(
    hook: &dyn Responses,
    home: &str,
    page: &ErrorPage<'_>,
    set_cookies: Vec<HeaderValue>,
) -> Page {
    let page = ErrorPage {
        home,
        ..page.clone()
    };
    let mut resp = finish(hook.error_page(&page));
    add_cookies(resp.headers_mut(), set_cookies);
    // For the layer's metrics and spans (and any middleware outside it): why, as a closed set.
    resp.extensions_mut().insert(page.reason);
    resp
}

/// The answer when a refresh is needed and the provider cannot do it now. Cookies are kept.
pub(crate) fn unavailable(hook: &dyn Responses, home: &str, client: Client, retry: &str) -> Page {
    let cx = UnavailableContext {
        client,
        retry,
        home,
        retry_after: RETRY_AFTER_SECS,
    };
    let mut resp = hook.unavailable(&cx);
    if !resp.headers().contains_key(header::RETRY_AFTER) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(cx.retry_after));
    }
    finish(resp)
}

/// RFC 6750 section 3.1: a refused bearer token.
pub(crate) fn invalid_token(
    hook: &dyn Responses,
    client: Client,
    refusal: Refusal,
    explain: bool,
) -> Page {
    crate::telemetry::rejection(refusal.code());
    let cx = InvalidTokenContext {
        client,
        refusal: explain.then_some(refusal),
    };
    let mut resp = hook.invalid_token(&cx);
    challenge(&mut resp, INVALID_TOKEN_CHALLENGE);
    explained(&mut resp, cx.refusal.as_ref());
    finish(resp)
}

/// Asks before a logout that did not come from the app itself.
pub(crate) fn confirm_logout(hook: &dyn Responses, logout_path: &str, cancel: &str) -> Page {
    let cx = ConfirmContext {
        action: logout_path,
        method: Method::POST,
        fields: &[],
        cancel,
    };
    confirmation(hook.confirm_logout(&cx))
}

/// Asks a signed-in user before a login started on another site (an IdP-initiated login, a
/// sealed login link choosing a tenant) replaces their session.
/// `field` is what the login was asked with, submitted again: `("idp_initiated_login", token)`
/// or a sealed login link's `("options", sealed)`.
pub(crate) fn confirm_login(
    hook: &dyn Responses,
    login_path: &str,
    field: (&str, &str),
    cancel: &str,
) -> Page {
    let fields = [field];
    let cx = ConfirmContext {
        action: login_path,
        method: Method::GET,
        fields: &fields,
        cancel,
    };
    confirmation(hook.confirm_login(&cx))
}

fn confirmation(resp: Response<Bytes>) -> Page {
    let mut resp = finish(resp);
    unframeable(resp.headers_mut());
    resp
}

/// A 401 names its scheme (RFC 9110 section 15.5.2).
fn challenge(resp: &mut Response<Bytes>, value: &'static str) {
    if resp.status() == StatusCode::UNAUTHORIZED
        && !resp.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
}

/// Every hooked answer is `no-store`, and becomes the layer's body type.
fn finish(resp: Response<Bytes>) -> Page {
    let mut resp = resp.map(Full::new);
    no_store(resp.headers_mut());
    resp
}

/// Keeps a `Cache-Control` that says `no-store` (`private, no-store` too), replaces any other.
fn no_store(headers: &mut HeaderMap) {
    // Exactly the layer's own values are kept; anything else a hook wrote (`public`, a
    // `max-age`, a `no-store` hidden in a quoted field list) is replaced.
    let mut values = headers.get_all(header::CACHE_CONTROL).iter();
    let kept = match (values.next(), values.next()) {
        (Some(value), None) => value == "no-store" || value == "private, no-store",
        _ => false,
    };
    if !kept {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    no_store_at_cdns(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(status: StatusCode) -> Response<Bytes> {
        let mut r = Response::new(Bytes::from_static(b"x"));
        *r.status_mut() = status;
        r
    }

    #[test]
    fn no_store_is_kept_or_imposed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        no_store(&mut h);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        no_store(&mut h);
        assert_eq!(h[header::CACHE_CONTROL], "private, no-store");
        // A `no-store` inside a quoted field list is not `no-store`.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache=\"a,no-store\", public, max-age=60"),
        );
        h.insert("cdn-cache-control", HeaderValue::from_static("max-age=600"));
        no_store(&mut h);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h["cdn-cache-control"], "no-store");
    }

    #[test]
    fn frame_protection_is_a_policy_of_its_own() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'self'"),
        );
        unframeable(&mut h);
        let policies: Vec<_> = h.get_all(header::CONTENT_SECURITY_POLICY).iter().collect();
        assert_eq!(policies.len(), 2, "{policies:?}");
        assert_eq!(policies[1], "frame-ancestors 'none'");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    }

    #[test]
    fn a_401_gets_its_challenge() {
        let mut r = bare(StatusCode::UNAUTHORIZED);
        challenge(&mut r, "Bearer");
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let mut r = bare(StatusCode::OK);
        challenge(&mut r, "Bearer");
        assert!(!r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
