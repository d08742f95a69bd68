//! axum extractors: `Claims` (rejects like `require()`) and `Option<Claims>`.

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

/// Rejection of the [`Claims`] extractor: the same response `require()` gives (a redirect to
/// login for browsers, 401 for APIs, `UNAUTHENTICATED` for gRPC), or a 500 when the
/// [`AuthLayer`](crate::AuthLayer) is not installed around the handler.
#[derive(Debug)]
pub struct ClaimsRejection(Page);

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        self.0.map(Body::new)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(claims.clone());
        }
        match parts.extensions.get::<AuthContext>() {
            Some(ctx) => Err(ClaimsRejection(reject_parts(&ctx.0, parts))),
            None => {
                tracing::error!("Claims extractor used without AuthLayer around the handler");
                Err(ClaimsRejection(crate::responses::json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"error": "AuthLayer is not installed"}),
                )))
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

impl IntoResponse for crate::claims::Forbidden {
    fn into_response(self) -> Response {
        crate::responses::forbidden(crate::responses::Client::Api, &self.0).map(Body::new)
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
        Err(ClaimsRejection(crate::responses::forbidden(client, &what)))
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
