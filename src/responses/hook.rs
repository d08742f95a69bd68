//! The [`Responses`] trait, what each of its methods is told, and [`DefaultResponses`].

use bytes::Bytes;
use http::{Method, Response, StatusCode};

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

    /// A signed-in user lacks what a guard requires (a role, a permission, a scope).
    ///
    /// Default: a 403 HTML page for browsers, 403 `{"error":"forbidden"}` for APIs,
    /// `PERMISSION_DENIED` for gRPC.
    fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
        render::forbidden(cx)
    }

    /// A sign-in failed or cannot start: the callback and login routes' error pages.
    ///
    /// Default: a small HTML page with the title, the message and a "Try again" link to
    /// [`retry`](ErrorPage::retry) when there is one, with the status in
    /// [`status`](ErrorPage::status).
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

/// Who is asking, which decides the shape of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Client {
    /// A top-level page load (`GET` or `HEAD` accepting `text/html`, or
    /// `Sec-Fetch-Mode: navigate`): a person in a browser.
    Browser,
    /// `Content-Type: application/grpc*`: a gRPC (or gRPC-Web) call, answered trailers-only
    /// (HTTP 200 with `grpc-status`).
    Grpc,
    /// Anything else: a program, answered with a status and JSON.
    Api,
}

/// What [`Responses::unauthenticated`] is told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UnauthenticatedContext<'a> {
    /// Who is asking.
    pub client: Client,
    /// The layer's login route with this request's `return_to`, such as
    /// `/auth/login?return_to=%2Fdocs%3Fpage%3D2`: a same-origin path, safe in a `Location`
    /// header or an `href` (escaped).
    pub login_url: &'a str,
    /// Where the user returns after signing in: this request's path and query if it is a safe
    /// same-origin target, else the app's default. From the request: escape it in HTML.
    pub return_to: &'a str,
}

/// What [`Responses::forbidden`] is told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ForbiddenContext<'a> {
    /// Who is asking.
    pub client: Client,
    /// What the user lacks, as the guard names it: `role admin`, `permission deploy:write`,
    /// `scope read`. Chosen by the app, not the request.
    pub what: &'a str,
}

/// What [`Responses::unavailable`] is told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UnavailableContext<'a> {
    /// Who is asking.
    pub client: Client,
    /// Where to try again: this request's path and query when it is a safe same-origin target,
    /// else the app's default. From the request: escape it in HTML.
    pub retry: &'a str,
    /// The seconds to wait, sent as `Retry-After` (added by the layer if the hook's answer has
    /// none).
    pub retry_after: u32,
}

/// What [`Responses::invalid_token`] is told. Why the token was refused is logged, never told:
/// it would help whoever is guessing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InvalidTokenContext {
    /// Who is asking (a bearer request is an API or gRPC client, unless a browser sends one).
    pub client: Client,
}

/// What the confirmation pages are told ([`Responses::confirm_logout`],
/// [`Responses::confirm_login`]): a form to submit, and a way back.
///
/// The layer decides whether a submission counts, not the page. A logout happens only when a
/// `POST` reaches the logout route from the app's own origin (its `Origin` or
/// `Sec-Fetch-Site`): that same-origin check is the layer's CSRF defence, so the logout form
/// carries no token today. An IdP-initiated login's token is verified again when the form
/// submits it. A page must submit every one of [`fields`](Self::fields) unchanged, with
/// [`method`](Self::method), to [`action`](Self::action), from a page the layer served; fields
/// the layer adds in the future appear there too.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConfirmContext<'a> {
    /// Where the form submits: the logout or login route.
    pub action: &'a str,
    /// How: `POST` for logout, `GET` for the IdP-initiated login.
    pub method: Method,
    /// Hidden fields to submit unchanged, as `(name, value)`: none for logout; the
    /// `idp_initiated_login` token for the login. Values come from the request: escape them.
    pub fields: &'a [(&'a str, &'a str)],
    /// Where "stay signed in" goes: the app's default return path.
    pub cancel: &'a str,
}

/// An error page: what [`Responses::error_page`] is told, and what the layer's routes build
/// in place of positional arguments.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ErrorPage<'a> {
    /// The status the layer chose: 400 for a bad or expired response, 401 for an ended
    /// session, 403 for access denied at the provider, 502, 503 or 504 for provider failures.
    pub status: StatusCode,
    /// Why, for a program (and for choosing a translation).
    pub reason: ErrorReason,
    /// The page's title, in English.
    pub title: &'a str,
    /// What happened, in English, for the user. For
    /// [`AudienceNotAccepted`](ErrorReason::AudienceNotAccepted) and
    /// [`SessionTooLarge`](ErrorReason::SessionTooLarge) it includes values from the provider's
    /// tokens: escape it in HTML.
    pub message: &'a str,
    /// Whether signing in again may help, and where: a same-origin path (the login route,
    /// keeping the attempt's return target, or with `prompt=login`). `None` when retrying
    /// cannot help.
    pub retry: Option<&'a str>,
    /// The OAuth `error` code the provider sent, for [`ErrorReason::ProviderError`].
    /// Untrusted: anyone can put any text in a link to the layer's routes.
    pub provider_error: Option<&'a str>,
    /// The provider's `error_description`, for [`ErrorReason::ProviderError`]. Untrusted:
    /// anyone can put any text in a link to the layer's routes. The default page never shows it.
    pub provider_error_description: Option<&'a str>,
}

impl<'a> ErrorPage<'a> {
    pub(crate) fn new(
        status: StatusCode,
        reason: ErrorReason,
        title: &'a str,
        message: &'a str,
        retry: Option<&'a str>,
    ) -> Self {
        Self {
            status,
            reason,
            title,
            message,
            retry,
            provider_error: None,
            provider_error_description: None,
        }
    }
}

/// Why a sign-in failed or could not start ([`ErrorPage::reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorReason {
    /// The login route's query string was malformed, too long or repeated a parameter.
    BadLoginRequest,
    /// The provider's authorization endpoint is not a usable URL.
    AuthorizationEndpointUnusable,
    /// A Scalekit IdP-initiated login token did not verify (forged, expired, malformed).
    InvalidIdpLogin,
    /// The provider reported an OAuth error ([`ErrorPage::provider_error`]), at the callback
    /// or the login route.
    ProviderError,
    /// The callback's query string was malformed.
    MalformedResponse,
    /// No login attempt matches the callback's `state`: unknown, already used, or its cookie
    /// expired.
    UnknownAttempt,
    /// The login attempt took longer than the login timeout.
    AttemptExpired,
    /// The callback's `iss` names another issuer (RFC 9207).
    IssuerMismatch,
    /// The provider promises `iss` in its responses and this one has none (RFC 9207).
    IssuerMissing,
    /// The callback has no authorization code.
    CodeMissing,
    /// The token endpoint did not answer in time.
    ExchangeTimeout,
    /// The token endpoint refused the code (expired or used).
    ExchangeRefused,
    /// The token endpoint failed (unreachable, a server error, a malformed answer).
    ExchangeFailed,
    /// The token endpoint answered without an ID token.
    IdTokenMissing,
    /// The ID token or the access token did not verify.
    TokensInvalid,
    /// The access token names an audience this app does not accept.
    AudienceNotAccepted,
    /// The provider session was ended (a logout) before this sign-in completed.
    SessionEnded,
    /// The session is too large for the cookies the app reads back.
    SessionTooLarge,
}

impl ErrorReason {
    /// A stable snake_case code, such as `unknown_attempt`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadLoginRequest => "bad_login_request",
            Self::AuthorizationEndpointUnusable => "authorization_endpoint_unusable",
            Self::InvalidIdpLogin => "invalid_idp_login",
            Self::ProviderError => "provider_error",
            Self::MalformedResponse => "malformed_response",
            Self::UnknownAttempt => "unknown_attempt",
            Self::AttemptExpired => "attempt_expired",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::IssuerMissing => "issuer_missing",
            Self::CodeMissing => "code_missing",
            Self::ExchangeTimeout => "exchange_timeout",
            Self::ExchangeRefused => "exchange_refused",
            Self::ExchangeFailed => "exchange_failed",
            Self::IdTokenMissing => "id_token_missing",
            Self::TokensInvalid => "tokens_invalid",
            Self::AudienceNotAccepted => "audience_not_accepted",
            Self::SessionEnded => "session_ended",
            Self::SessionTooLarge => "session_too_large",
        }
    }
}

impl std::fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gRPC status codes the layer answers with ([`grpc_status`](super::grpc_status)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// `PERMISSION_DENIED` (7).
    PermissionDenied,
    /// `UNAVAILABLE` (14).
    Unavailable,
    /// `UNAUTHENTICATED` (16).
    Unauthenticated,
}

impl GrpcCode {
    /// The numeric code, as sent in `grpc-status`.
    #[must_use]
    pub fn code(self) -> u16 {
        match self {
            Self::PermissionDenied => 7,
            Self::Unavailable => 14,
            Self::Unauthenticated => 16,
        }
    }
}
