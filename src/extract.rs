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
