//! `ClaimsRejection` is matchable: a handler that takes `Result<Claims, ClaimsRejection>` (or a
//! guard extractor's result) can tell why there are no claims, and still answer as the layer
//! would.

use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::extract::{ClaimsRejection, RequireRole, RoleName};
use tower_oidc_auth::testing::TestUser;
use tower_oidc_auth::Claims;

use crate::helpers::*;

struct Auditor;

impl RoleName for Auditor {
    const NAME: &'static str = "auditor";
}

/// Says which variant it got, and keeps the layer's own answer's status.
fn describe(rejection: ClaimsRejection) -> (StatusCode, String) {
    let status = rejection.status();
    let what = match &rejection {
        ClaimsRejection::Unauthenticated(_) => "unauthenticated".to_owned(),
        ClaimsRejection::Forbidden(missing) => format!("forbidden: {}", missing.what()),
        ClaimsRejection::LayerMissing(_) => "layer missing".to_owned(),
        _ => "other".to_owned(),
    };
    assert_eq!(rejection.into_response().status(), status);
    (status, what)
}

fn routes() -> Router {
    Router::new()
        .route(
            "/who",
            get(|c: Result<Claims, ClaimsRejection>| async move {
                match c {
                    Ok(c) => (StatusCode::OK, c.sub.clone()),
                    Err(rejection) => describe(rejection),
                }
            }),
        )
        .route(
            "/audit",
            get(
                |c: Result<RequireRole<Auditor>, ClaimsRejection>| async move {
                    match c {
                        Ok(RequireRole(c, _)) => (StatusCode::OK, c.sub.clone()),
                        Err(rejection) => describe(rejection),
                    }
                },
            ),
        )
}

async fn get_text(app: &Router, uri: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::get(uri).header(header::ACCEPT, "application/json");
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn rejections_say_why_and_keep_the_layers_status() {
    let s = setup().await;
    let app = routes().layer(s.auth.clone());
    let cookie = s
        .provider
        .session_cookie(&s.auth, &TestUser::new("usr_7").role("viewer"));

    assert_eq!(
        get_text(&app, "/who", None).await,
        (StatusCode::UNAUTHORIZED, "unauthenticated".to_owned())
    );
    assert_eq!(
        get_text(&app, "/who", Some(&cookie)).await,
        (StatusCode::OK, "usr_7".to_owned())
    );
    assert_eq!(
        get_text(&app, "/audit", Some(&cookie)).await,
        (StatusCode::FORBIDDEN, "forbidden: role auditor".to_owned())
    );
    assert_eq!(
        get_text(&app, "/audit", None).await,
        (StatusCode::UNAUTHORIZED, "unauthenticated".to_owned())
    );

    // Without the layer around the handler: a server error, named as such.
    assert_eq!(
        get_text(&routes(), "/who", None).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "layer missing".to_owned()
        )
    );
}
