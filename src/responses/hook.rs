//! The [`Responses`] trait, what each of its methods is told, and [`DefaultResponses`].

use bytes::Bytes;
use http::Response;

use super::context::{
    ConfirmContext, ErrorPage, ForbiddenContext, InvalidTokenContext, StepUpContext,
    UnauthenticatedContext, UnavailableContext,
};
use super::render;

/// Renders the answers the layer gives people and clients: set one with
/// [`AuthLayerBuilder::responses`](crate::AuthLayerBuilder::responses) to restyle or translate
/// them. Every method has a default, the layer's own answer; override only what you restyle,
/// and call [`DefaultResponses`] for the rest of a method's cases (see the
/// [module docs](crate::responses) for an example).
///
/// Each method receives a context describing the situation, and returns the whole response.
///
/// # What the layer keeps, whatever the hook returns
///
/// The hook renders; the layer decides and enforces. After each call the layer:
///
/// - adds its own `Set-Cookie` headers (clearing a dead session, a used login attempt), with
///   `Cache-Control: private, no-store` and `Vary: Cookie`, as it does for any response that sets
///   cookies;
/// - makes the answer `Cache-Control: no-store` when the hook's `Cache-Control` does not say
///   `no-store` (every answer here is per request, some per user);
/// - adds `WWW-Authenticate` to an unauthenticated or invalid-token answer that is a 401
///   without one (RFC 9110 section 15.5.2), and `Retry-After` to an unavailable answer without
///   one;
/// - makes the confirmation pages unframeable (`X-Frame-Options: DENY`, and a
///   `Content-Security-Policy: frame-ancestors 'none'` added to any policy of the hook's), so
///   their buttons cannot be clickjacked;
/// - validates what the confirmation pages submit: a logout happens only for a same-origin POST
///   to the logout route, an IdP-initiated login only with a token that verifies, whatever a
///   page says.
///
/// Which request gets which answer (the kind of client, the status the layer decides on, where
/// a retry goes) is decided before the hook is called, and given to it in the context.
///
/// # Untrusted text
///
/// Some context fields come from the request or from the identity provider (they are marked
/// so): anyone can put any text in a link to the layer's routes. Never put them into HTML
/// without escaping them ([`escape_html`](super::escape_html)).
///
/// # Why `http::Response<Bytes>`
///
/// The answers are small and complete, so a body of [`Bytes`] is enough, and `http` and `bytes`
/// are stable 1.x crates whose types this crate's API already uses. A boxed or
/// `http-body-util` body type would tie this trait to that crate's (0.x) releases.
///
/// # Why the hook is not asked about the rest
///
/// The back-channel logout and webhook routes answer the identity provider, in the protocol's
/// terms; a method not allowed on one of the layer's routes is a 405 for a client's developer.
/// None is a page a person reads, and none is hooked.
pub trait Responses: Send + Sync + 'static {
    /// A request that needs a signed-in user has none (a [`require`](crate::AuthLayer::require)
    /// guard, the [`Claims`](crate::Claims) extractor).
    ///
    /// Default: browsers are redirected to [`login_url`](UnauthenticatedContext::login_url)
    /// (302); APIs get 401 `{"error":"unauthenticated"}` with `WWW-Authenticate: Bearer`; gRPC
    /// gets `UNAUTHENTICATED`.
    ///
    /// The browser case may be overridden too, for instance with a page that explains and links
    /// to [`login_url`](UnauthenticatedContext::login_url): the redirect carries nothing of the
    /// user's, and what makes it safe (the sanitized `return_to`, clearing a dead session's
    /// cookies, `no-store`) stays the layer's. A hook that redirects elsewhere takes the user
    /// away from the sign-in the layer would start.
    fn unauthenticated(&self, cx: &UnauthenticatedContext<'_>) -> Response<Bytes> {
        render::unauthenticated(cx)
    }

    /// A signed-in user's sign-in is not recent enough or not strong enough for a
    /// [`require_recent_login`](crate::AuthLayer::require_recent_login) or
    /// [`require_acr`](crate::AuthLayer::require_acr) guard.
    ///
    /// Default: browsers are redirected to [`login_url`](StepUpContext::login_url), a login
    /// that asks the provider for the step-up and returns to the same page (302); APIs get 401
    /// `{"error":"insufficient_user_authentication"}` with the RFC 9470 challenge
    /// `WWW-Authenticate: Bearer error="insufficient_user_authentication",
    /// error_description="...", max_age=N` (or `acr_values="..."`); gRPC gets
    /// `UNAUTHENTICATED`. The layer adds that challenge to a 401 of the hook's without one.
    fn step_up(&self, cx: &StepUpContext<'_>) -> Response<Bytes> {
        render::step_up(cx)
    }

    /// A signed-in user lacks what a guard requires (a role, a permission, a scope).
    ///
    /// Default: a 403 HTML page for browsers, 403 `{"error":"forbidden"}` for APIs,
    /// `PERMISSION_DENIED` for gRPC.
    fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
        render::forbidden(cx)
    }

    /// A sign-in failed or cannot start: the callback and login routes' error pages.
    ///
    /// Default: a small HTML page with the title, the message, the provider's
    /// [`error_description`](ErrorPage::provider_error_description) (escaped) as a detail, a
    /// "Try again" link to [`retry`](ErrorPage::retry) when there is one and a "Back to the
    /// app" link to `/`, with the status in [`status`](ErrorPage::status).
    fn error_page(&self, cx: &ErrorPage<'_>) -> Response<Bytes> {
        render::error_page(cx)
    }

    /// A session needs renewing and the identity provider cannot do it now (unreachable, timed
    /// out, or its answer did not verify). The user is still signed in: the cookies are kept.
    ///
    /// Default: 503 with `Retry-After: 5`: an HTML page with a retry link for browsers,
    /// `{"error":"temporarily_unavailable"}` for APIs, `UNAVAILABLE` for gRPC.
    fn unavailable(&self, cx: &UnavailableContext<'_>) -> Response<Bytes> {
        render::unavailable(cx)
    }

    /// An `Authorization: Bearer` token was refused (RFC 6750 section 3.1). Why is logged, not
    /// told.
    ///
    /// Default: 401 `{"error":"invalid_token"}` with
    /// `WWW-Authenticate: Bearer error="invalid_token"`; gRPC gets `UNAUTHENTICATED`.
    fn invalid_token(&self, cx: &InvalidTokenContext) -> Response<Bytes> {
        render::invalid_token(cx)
    }

    /// A logout request that did not come from the app itself (a cross-site link or form): the
    /// page asks the user to confirm, with a form that submits to the logout route from the
    /// app's own origin.
    ///
    /// Default: "Sign out?" with a "Sign out" button and a "Stay signed in" link.
    fn confirm_logout(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        render::confirm_logout(cx)
    }

    /// A signed-in user followed a Scalekit IdP-initiated login link from another site, which
    /// would replace their session: the page asks first.
    ///
    /// Default: "Switch account?" with a "Continue" button and a "Stay signed in" link.
    fn confirm_login(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        render::confirm_login(cx)
    }
}

/// The layer's own answers: every [`Responses`] method at its default. A custom implementation
/// calls it for the cases it does not restyle:
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use tower_oidc_auth::responses::{Client, DefaultResponses, ForbiddenContext, Responses};
///
/// struct OnlyBrowsers;
///
/// impl Responses for OnlyBrowsers {
///     fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
///         match cx.client {
///             Client::Browser => Response::builder()
///                 .status(403)
///                 .header("content-type", "text/html; charset=utf-8")
///                 .body(Bytes::from_static(b"<h1>Nope</h1>"))
///                 .unwrap(),
///             _ => DefaultResponses.forbidden(cx),
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultResponses;

impl Responses for DefaultResponses {}
