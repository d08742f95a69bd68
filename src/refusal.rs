//! Why the layer refused a request: the answer to "why was I refused?".
//!
//! Every 401, 403 and redirect to login that the layer (or its guards and extractors) makes has
//! a [`Refusal`]. Its [`code`](Refusal::code) labels the `oidc_rejections_total` metric. With
//! [`explain_refusals(true)`](crate::AuthLayerBuilder::explain_refusals), meant for development,
//! the answer also carries it: a header `x-auth-refusal: <reason>` and, in the layer's own JSON
//! and HTML answers, a sentence. A reason names claims and times, never a value that identifies
//! a user, and never token material.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::testing::TestProvider;
//!
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .explain_refusals(true)
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .route_layer(auth.require())
//!     .layer(auth);
//! let resp = app
//!     .oneshot(Request::get("/me").header("authorization", "Bearer x.y.z").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(resp.headers()["x-auth-refusal"], "malformed_token");
//! # }
//! ```

use std::fmt;

/// A layer's reason for treating a request as anonymous, in the request's extensions: only
/// that layer's guards and extractors read it (layers can be nested).
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub(crate) layer: crate::claims::LayerId,
    pub(crate) refusal: Refusal,
}

impl Refused {
    /// This layer's reason in `extensions`, or none: the request had no credentials for it.
    pub(crate) fn of<'a>(
        extensions: &'a http::Extensions,
        layer: &crate::claims::LayerId,
    ) -> &'a Refusal {
        extensions
            .get::<Self>()
            .filter(|r| r.layer == *layer)
            .map_or(&Refusal::NoCredentials, |r| &r.refusal)
    }
}

/// The header that carries a [`Refusal`] when refusals are explained.
pub const REFUSAL_HEADER: &str = "x-auth-refusal";

/// Why a request was refused, or treated as signed out. A closed set (new reasons may be
/// added); its [`Display`](fmt::Display) is the `x-auth-refusal` header's value: the
/// [`code`](Self::code), followed for some reasons by `=` and a time (seconds since the epoch)
/// or the name of what a guard requires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No session cookie and no bearer token.
    NoCredentials,
    /// The session cookie did not open: sealed with another key (the key changed, or the server
    /// restarted without a configured key), damaged or cut short.
    SessionUnreadable,
    /// The session's access token expired at this time, and it has no refresh token.
    Expired {
        /// `exp`.
        at: i64,
    },
    /// The session was idle past the idle timeout, which ended it at this time.
    IdleTimeout {
        /// Last seen plus the idle timeout.
        at: i64,
    },
    /// The session reached its absolute lifetime at this time.
    LifetimeEnded {
        /// Sign-in plus the session's maximum age.
        at: i64,
    },
    /// The session was revoked at this time: a logout (here or on another instance), a
    /// back-channel logout, a `user.logout` webhook, or the app.
    Revoked {
        /// When it was revoked.
        at: i64,
    },
    /// The provider refused the session's refresh token (`invalid_grant`).
    RefreshRefused,
    /// The app's refresh hook ended the session.
    EndedByHook,
    /// Store mode: the session's record is gone (ended, or expired).
    SessionGone,
    /// A refreshed session grew too large for the cookies the layer reads back.
    SessionTooLarge,
    /// A token names a key (`kid`) the provider does not publish.
    UnknownKid,
    /// A token's signature does not verify with the provider's key.
    BadSignature,
    /// A token's audience (`aud`) names neither this client nor an accepted audience.
    AudienceMismatch,
    /// A token's issuer (`iss`) is not the provider's.
    IssuerMismatch,
    /// A bearer token has expired.
    TokenExpired,
    /// A token is not a JWT, or its header or claims do not parse.
    MalformedToken,
    /// A token failed another check, named here (such as `algorithm`, `not_yet_valid`,
    /// `token_type`, `missing_claim`).
    TokenRefused {
        /// Which check.
        check: &'static str,
    },
    /// A guard requires a role the user lacks.
    MissingRole(String),
    /// A guard requires a permission the user lacks.
    MissingPermission(String),
    /// A guard requires a scope the token lacks.
    MissingScope(String),
    /// A guard requires something else the user lacks (a custom check), as it names it.
    Missing(String),
    /// A guard requires a more recent or a stronger sign-in (`max_age`, `acr_values`).
    StepUpRequired,
}

impl Refusal {
    /// The reason as a stable snake_case code, without its value: the `reason` label of
    /// `oidc_rejections_total`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoCredentials => "no_credentials",
            Self::SessionUnreadable => "session_unreadable",
            Self::Expired { .. } => "expired_at",
            Self::IdleTimeout { .. } => "idle_timeout_at",
            Self::LifetimeEnded { .. } => "lifetime_ended_at",
            Self::Revoked { .. } => "revoked_at",
            Self::RefreshRefused => "refresh_refused",
            Self::EndedByHook => "ended_by_hook",
            Self::SessionGone => "session_gone",
            Self::SessionTooLarge => "session_too_large",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::AudienceMismatch => "audience_mismatch",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::TokenExpired => "token_expired",
            Self::MalformedToken => "malformed_token",
            Self::TokenRefused { .. } => "token_refused",
            Self::MissingRole(_) => "missing_role",
            Self::MissingPermission(_) => "missing_permission",
            Self::MissingScope(_) => "missing_scope",
            Self::Missing(_) => "missing",
            Self::StepUpRequired => "step_up_required",
        }
    }

    /// The reason in a sentence, for the body of an explained answer.
    #[must_use]
    pub fn explanation(&self) -> String {
        match self {
            Self::NoCredentials => "The request has no session cookie and no bearer token.".into(),
            Self::SessionUnreadable => "The session cookie did not open: it was sealed with \
                another key (was the cookie key changed, or the server restarted without one?), \
                or it is damaged."
                .into(),
            Self::Expired { at } => format!(
                "The session's access token expired at {at} (Unix time) and the session has no \
                 refresh token."
            ),
            Self::IdleTimeout { at } => {
                format!("The session was idle too long: it ended at {at} (Unix time).")
            }
            Self::LifetimeEnded { at } => {
                format!("The session reached its maximum age at {at} (Unix time).")
            }
            Self::Revoked { at } => format!(
                "The session was revoked at {at} (Unix time): a logout, here or elsewhere, or \
                 the provider ended it."
            ),
            Self::RefreshRefused => {
                "The provider refused the session's refresh token (invalid_grant).".into()
            }
            Self::EndedByHook => "The application's refresh hook ended the session.".into(),
            Self::SessionGone => {
                "The session is no longer in the session store (ended, or expired).".into()
            }
            Self::SessionTooLarge => {
                "The refreshed session was too large for the application's cookies.".into()
            }
            Self::UnknownKid => {
                "The token names a signing key (kid) the provider does not publish.".into()
            }
            Self::BadSignature => "The token's signature does not verify.".into(),
            Self::AudienceMismatch => "The token's audience (aud) is not this application.".into(),
            Self::IssuerMismatch => "The token's issuer (iss) is not the provider.".into(),
            Self::TokenExpired => "The token has expired.".into(),
            Self::MalformedToken => "The token is not a well-formed JWT.".into(),
            Self::TokenRefused { check } => format!("The token failed the check: {check}."),
            Self::MissingRole(name) => format!("This needs the role {name}."),
            Self::MissingPermission(name) => format!("This needs the permission {name}."),
            Self::MissingScope(name) => format!("This needs the scope {name}."),
            Self::Missing(what) => format!("This needs {what}."),
            Self::StepUpRequired => "This needs a more recent or a stronger sign-in.".into(),
        }
    }

    /// What a guard requires, as it names it (`role admin`, `permission deploy:write`,
    /// `scope read`, or the name of a custom check).
    pub(crate) fn of_guard(what: &str) -> Self {
        match what.split_once(' ') {
            Some(("role", name)) => Self::MissingRole(name.to_owned()),
            Some(("permission", name)) => Self::MissingPermission(name.to_owned()),
            Some(("scope", name)) => Self::MissingScope(name.to_owned()),
            _ => Self::Missing(what.to_owned()),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            Self::Expired { at }
            | Self::IdleTimeout { at }
            | Self::LifetimeEnded { at }
            | Self::Revoked { at } => write!(f, "{code}={at}"),
            Self::TokenRefused { check } => write!(f, "{code}={check}"),
            Self::MissingRole(name)
            | Self::MissingPermission(name)
            | Self::MissingScope(name)
            | Self::Missing(name) => write!(f, "{code}={name}"),
            _ => f.write_str(code),
        }
    }
}
