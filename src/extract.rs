//! axum extractors (feature `axum`): [`Claims`] (rejects like `require()`), `Option<Claims>`,
//! and the guards [`RequireRole`] and [`RequirePermission`], with their matchable
//! [`ClaimsRejection`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::extract::{RequireRole, RoleName};
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//! use tower_oidc_auth::Claims;
//!
//! struct Admin;
//! impl RoleName for Admin {
//!     const NAME: &'static str = "admin";
//! }
//!
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/", get(|c: Option<Claims>| async move { c.map(|c| c.sub.clone()).unwrap_or_default() }))
//!     .route("/admin", get(|RequireRole(c, ..): RequireRole<Admin>| async move { c.sub.clone() }))
//!     .layer(auth.clone());
//! let get = |path: &str, cookie: &str| {
//!     Request::get(path).header(header::COOKIE, cookie).body(Body::empty()).unwrap()
//! };
//!
//! let user = provider.session_cookie(&auth, &TestUser::new("usr_1"));
//! assert_eq!(app.clone().oneshot(get("/", &user)).await.unwrap().status(), StatusCode::OK);
//! let refused = app.clone().oneshot(get("/admin", &user)).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::FORBIDDEN);
//! let root = provider.session_cookie(&auth, &TestUser::new("usr_2").role("admin"));
//! assert_eq!(app.oneshot(get("/admin", &root)).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```

use std::convert::Infallible;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::claims::Claims;
use crate::require::reject_parts;
use crate::responses::Page;
use crate::service::AuthContext;

/// Rejection of the [`Claims`] extractor and of the guard extractors ([`RequireRole`],
/// [`RequirePermission`]). As a response it is what `require()` answers; as a value it says why,
/// for a handler that takes `Result<Claims, ClaimsRejection>`:
///
/// ```
/// use axum::response::IntoResponse;
/// use tower_oidc_auth::extract::ClaimsRejection;
/// use tower_oidc_auth::Claims;
///
/// async fn page(claims: Result<Claims, ClaimsRejection>) -> axum::response::Response {
///     match claims {
///         Ok(claims) => format!("hello {}", claims.sub).into_response(),
///         Err(ClaimsRejection::Unauthenticated(_)) => "hello, guest".into_response(),
///         Err(other) => other.into_response(),
///     }
/// }
/// # let _ = page;
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// No signed-in user: a redirect to login for browsers, 401 for APIs, `UNAUTHENTICATED`
    /// for gRPC.
    Unauthenticated(Unauthenticated),
    /// Signed in, without the role or permission a guard extractor asks for: 403.
    Forbidden(MissingGrant),
    /// The [`AuthLayer`](crate::AuthLayer) is not installed around the handler: a 500 (a
    /// mistake in the app, logged at error level).
    LayerMissing(LayerMissing),
}

impl ClaimsRejection {
    /// The status of the answer.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(u) => u.0.status(),
            Self::Forbidden(m) => m.page.status(),
            Self::LayerMissing(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthenticated(_) => f.write_str("not signed in"),
            Self::Forbidden(m) => write!(f, "signed in without the {}", m.what),
            Self::LayerMissing(_) => f.write_str("AuthLayer is not installed around the handler"),
        }
    }
}

impl std::error::Error for ClaimsRejection {}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated(u) => u.into_response(),
            Self::Forbidden(m) => m.into_response(),
            Self::LayerMissing(l) => l.into_response(),
        }
    }
}

/// No signed-in user (see [`ClaimsRejection::Unauthenticated`]); its response is the layer's
/// answer for the kind of client.
#[derive(Debug)]
pub struct Unauthenticated(Page);

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        self.0.map(Body::new)
    }
}

/// A role or permission the signed-in user lacks (see [`ClaimsRejection::Forbidden`]).
#[derive(Debug)]
pub struct MissingGrant {
    what: String,
    page: Page,
}

impl MissingGrant {
    /// What was missing, such as `role admin` or `permission deploy:write`.
    #[must_use]
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl IntoResponse for MissingGrant {
    fn into_response(self) -> Response {
        self.page.map(Body::new)
    }
}

/// The layer is not installed around the handler (see [`ClaimsRejection::LayerMissing`]).
#[derive(Debug)]
pub struct LayerMissing(());

impl IntoResponse for LayerMissing {
    fn into_response(self) -> Response {
        crate::responses::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"error": "AuthLayer is not installed"}),
        )
        .map(Body::new)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(claims.clone());
        }
        match parts.extensions.get::<AuthContext>() {
            Some(ctx) => Err(ClaimsRejection::Unauthenticated(Unauthenticated(
                reject_parts(&ctx.0, parts),
            ))),
            None => {
                tracing::error!("Claims extractor used without AuthLayer around the handler");
                Err(ClaimsRejection::LayerMissing(LayerMissing(())))
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Claims>().cloned())
    }
}

/// The access token of the request ([`AccessToken`](crate::AccessToken)): rejects like
/// [`Claims`] when no one is signed in.
impl<S: Send + Sync> FromRequestParts<S> for crate::AccessToken {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let _claims = <Claims as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        match crate::AccessTokenExt::access_token(&*parts) {
            Some(token) => Ok(token),
            None => Err(unauthenticated(parts)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for crate::AccessToken {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(crate::AccessTokenExt::access_token(&*parts))
    }
}

/// The app data the login hook kept in the session
/// ([`LoginDecision::AllowWith`](crate::LoginDecision::AllowWith)), as `T`.
///
/// Rejects like [`Claims`] when no one is signed in, and also when the session has no app data
/// of this shape (a session made before the hook kept any, or by a hook that kept another
/// shape): the user signs in again, and the hook runs again. `Option<AppData<T>>` never
/// rejects.
///
/// ```
/// use tower_oidc_auth::extract::AppData;
///
/// #[derive(serde::Deserialize)]
/// struct Account {
///     id: u64,
/// }
///
/// async fn orders(AppData(account): AppData<Account>) -> String {
///     format!("orders of account {}", account.id)
/// }
/// # let _ = orders;
/// ```
#[derive(Debug, Clone)]
pub struct AppData<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for AppData<T> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = <Claims as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        match claims.app_data::<T>() {
            Some(data) => Ok(Self(data)),
            None => {
                tracing::warn!(
                    "AppData: the session has no app data of this shape; sending the user to \
                     sign in again (does the login hook return LoginDecision::AllowWith?)"
                );
                Err(unauthenticated(parts))
            }
        }
    }
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> OptionalFromRequestParts<S> for AppData<T> {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Claims>()
            .and_then(Claims::app_data::<T>)
            .map(Self))
    }
}

/// The unauthenticated answer for a request the layer passed on as signed in, when what it
/// carries is not enough (no access token, no app data).
fn unauthenticated(parts: &Parts) -> ClaimsRejection {
    let page = match parts.extensions.get::<AuthContext>() {
        Some(ctx) => reject_parts(&ctx.0, parts),
        None => crate::responses::unauthenticated(
            &crate::responses::DefaultResponses,
            crate::responses::Client::of(&parts.method, &parts.headers),
            "/auth/login",
            "/",
            &crate::refusal::Refusal::NoCredentials,
            false,
        ),
    };
    ClaimsRejection::Unauthenticated(Unauthenticated(page))
}

impl IntoResponse for crate::claims::Forbidden {
    fn into_response(self) -> Response {
        // Made in a handler, without the request or the layer: the default API answer.
        let mut resp = crate::responses::forbidden(
            &crate::responses::DefaultResponses,
            "/",
            crate::responses::Client::Api,
            &self.0,
            false,
        );
        // The layer around the app adds it as `x-auth-refusal` when refusals are explained.
        resp.extensions_mut()
            .insert(crate::refusal::Refusal::of_guard(&self.0));
        resp.map(Body::new)
    }
}

/// Names a role for the [`RequireRole`] extractor.
///
/// ```
/// use tower_oidc_auth::{RequireRole, RoleName};
/// struct Admin;
/// impl RoleName for Admin {
///     const NAME: &'static str = "admin";
/// }
/// async fn admin_only(RequireRole(claims, ..): RequireRole<Admin>) -> String {
///     format!("hello admin {}", claims.sub)
/// }
/// ```
pub trait RoleName {
    /// The role, as it appears in the `roles` claim.
    const NAME: &'static str;
}

/// Names a permission for the [`RequirePermission`] extractor.
pub trait PermissionName {
    /// The permission, as it appears in the `permissions` claim.
    const NAME: &'static str;
}

/// Extracts [`Claims`] of a user with role `R`. Without a session it rejects like
/// [`Claims`]; without the role it answers 403 (a small page for browser navigations, gRPC
/// `PERMISSION_DENIED` for gRPC, JSON otherwise).
///
/// Why marker types: the role is part of the handler's signature and checked before the body
/// runs, which reads best for handlers that exist for one role; `&str` const generics are not
/// stable Rust. For checks that depend on the request, call
/// [`Claims::require_role`] inside the handler, or use
/// [`AuthLayer::require_role`](crate::AuthLayer::require_role) for whole route groups.
pub struct RequireRole<R>(pub Claims, pub std::marker::PhantomData<R>);

/// Extracts [`Claims`] of a user with permission `P`; see [`RequireRole`].
pub struct RequirePermission<P>(pub Claims, pub std::marker::PhantomData<P>);

impl<R> std::fmt::Debug for RequireRole<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequireRole").field(&self.0).finish()
    }
}

impl<P> std::fmt::Debug for RequirePermission<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequirePermission").field(&self.0).finish()
    }
}

async fn guarded(
    parts: &mut Parts,
    what: String,
    check: impl FnOnce(&Claims) -> bool,
) -> Result<Claims, ClaimsRejection> {
    let claims = <Claims as FromRequestParts<()>>::from_request_parts(parts, &()).await?;
    if check(&claims) {
        Ok(claims)
    } else {
        let client = crate::responses::Client::of(&parts.method, &parts.headers);
        // The layer's state is beside the claims when the app set its own responses.
        let page = match parts.extensions.get::<AuthContext>() {
            Some(ctx) => crate::responses::forbidden(
                &*ctx.0.responses,
                &ctx.0.settings.default_return,
                client,
                &what,
                ctx.0.settings.explain_refusals,
            ),
            None => crate::responses::forbidden(
                &crate::responses::DefaultResponses,
                "/",
                client,
                &what,
                false,
            ),
        };
        Err(ClaimsRejection::Forbidden(MissingGrant { what, page }))
    }
}

impl<S: Send + Sync, R: RoleName + Send + Sync> FromRequestParts<S> for RequireRole<R> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let claims = guarded(parts, format!("role {}", R::NAME), |c| c.has_role(R::NAME)).await?;
        Ok(Self(claims, std::marker::PhantomData))
    }
}

impl<S: Send + Sync, P: PermissionName + Send + Sync> FromRequestParts<S> for RequirePermission<P> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let claims = guarded(parts, format!("permission {}", P::NAME), |c| {
            c.has_permission(P::NAME)
        })
        .await?;
        Ok(Self(claims, std::marker::PhantomData))
    }
}
