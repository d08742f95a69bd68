//! What each method of [`Responses`](super::Responses) is told: the kind of client, and the
//! situation's context.

use http::{Method, StatusCode};

use crate::refusal::Refusal;

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

/// What [`Responses::unauthenticated`](super::Responses::unauthenticated) is told.
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
    /// Why, when refusals are explained
    /// ([`explain_refusals`](crate::AuthLayerBuilder::explain_refusals)); `None` otherwise.
    pub refusal: Option<&'a Refusal>,
}

/// What [`Responses::step_up`](super::Responses::step_up) is told: the user is signed in, but
/// not recently enough ([`require_recent_login`](crate::AuthLayer::require_recent_login)) or
/// not strongly enough ([`require_acr`](crate::AuthLayer::require_acr)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepUpContext<'a> {
    /// Who is asking.
    pub client: Client,
    /// A login link that asks the provider for the step-up and returns to this request's page:
    /// a same-origin path with sealed options, safe in a `Location` header or an `href`
    /// (escaped).
    pub login_url: &'a str,
    /// Where the user returns after the step-up: this request's path and query if it is a safe
    /// same-origin target, else the app's default. From the request: escape it in HTML.
    pub return_to: &'a str,
    /// The `max_age` the guard asks for, in seconds.
    pub max_age: Option<u64>,
    /// The `acr_values` the guard asks for (space-separated). Chosen by the app.
    pub acr_values: Option<&'a str>,
    /// Why, when refusals are explained; `None` otherwise.
    pub refusal: Option<&'a Refusal>,
}

/// What [`Responses::forbidden`](super::Responses::forbidden) is told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ForbiddenContext<'a> {
    /// Who is asking.
    pub client: Client,
    /// What the user lacks, as the guard names it: `role admin`, `permission deploy:write`,
    /// `scope read`. Chosen by the app, not the request.
    pub what: &'a str,
    /// The way back to the app: its default return path (where a user lands after login and
    /// logout), or `/` when the answer is made without the layer.
    pub home: &'a str,
    /// Why, when refusals are explained; `None` otherwise.
    pub refusal: Option<&'a Refusal>,
}

/// What [`Responses::unavailable`](super::Responses::unavailable) is told.
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
    /// The way back to the app: its default return path.
    pub home: &'a str,
}

/// What [`Responses::invalid_token`](super::Responses::invalid_token) is told. Why the token
/// was refused is logged, and told only when refusals are explained (in development): it would
/// help whoever is guessing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InvalidTokenContext {
    /// Who is asking (a bearer request is an API or gRPC client, unless a browser sends one).
    pub client: Client,
    /// Why, when refusals are explained; `None` otherwise.
    pub refusal: Option<Refusal>,
}

/// What the confirmation pages are told ([`Responses::confirm_logout`](super::Responses::confirm_logout),
/// [`Responses::confirm_login`](super::Responses::confirm_login)): a form to submit, and a way back.
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

/// An error page: what [`Responses::error_page`](super::Responses::error_page) is told, and what the layer's routes build
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
    /// Untrusted: anyone can put any text in a link to the layer's routes. The default page
    /// shows it, escaped, beside the description.
    pub provider_error: Option<&'a str>,
    /// The provider's `error_description`, for [`ErrorReason::ProviderError`]. Untrusted:
    /// anyone can put any text in a link to the layer's routes. The default page shows it,
    /// escaped and shortened, as a detail under the message.
    pub provider_error_description: Option<&'a str>,
    /// The way back to the app: its default return path (where a user lands after login and
    /// logout), set by the layer.
    pub home: &'a str,
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
            home: "/",
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
    /// The token endpoint refused this app's own credentials (`invalid_client`,
    /// `unauthorized_client`): a configuration error of the app, not of the user.
    ClientRejected,
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
    /// The app's login hook refused the user ([`LoginDecision::Deny`](crate::LoginDecision)):
    /// the message is the hook's reason.
    LoginDenied,
    /// The app's login hook failed: an error, a panic, its time limit, or app data over the
    /// limit.
    LoginHookFailed,
    /// The login asked for a step-up (`max_age`, `acr_values`) and the ID token does not show
    /// it: `auth_time` missing or too old, or `acr` not among the values asked for.
    StepUpNotMet,
    /// The session store failed or did not answer, so the session could not be saved.
    SessionStoreUnavailable,
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
            Self::ClientRejected => "client_rejected",
            Self::ExchangeFailed => "exchange_failed",
            Self::IdTokenMissing => "id_token_missing",
            Self::TokensInvalid => "tokens_invalid",
            Self::AudienceNotAccepted => "audience_not_accepted",
            Self::SessionEnded => "session_ended",
            Self::SessionTooLarge => "session_too_large",
            Self::LoginDenied => "login_denied",
            Self::LoginHookFailed => "login_hook_failed",
            Self::StepUpNotMet => "step_up_not_met",
            Self::SessionStoreUnavailable => "session_store_unavailable",
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
