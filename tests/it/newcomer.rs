//! Traps of a newcomer's first hour (issue 16): the layer steers around them.

use axum::body::Body;
use http::{header, Request, StatusCode};
use tower::ServiceExt;

use crate::helpers::*;

fn login_on(host: &str) -> Request<Body> {
    Request::get("/auth/login?return_to=%2Fme")
        .header(header::HOST, host)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap()
}

/// Opened as `http://localhost:3000` while the redirect URL says `127.0.0.1:3000`: the login
/// first moves the browser to the redirect URL's origin, before any cookie is set, so the sign-in
/// cookie and the callback share one host and the first login completes.
#[tokio::test]
async fn a_login_on_another_loopback_name_moves_to_the_redirect_urls_origin() {
    let s = setup().await;
    for alias in [
        "localhost:3000",
        "127.0.0.1:8080",
        "[::1]:3000",
        "LOCALHOST:3000",
    ] {
        let resp = s.app.clone().oneshot(login_on(alias)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{alias}");
        let loc = location(&resp);
        assert!(
            loc.starts_with("http://127.0.0.1:3000/auth/login?return_to=%2Fme&login_moved="),
            "{alias}: {loc}"
        );
        assert!(
            set_cookies(&resp).is_empty(),
            "{alias}: no transaction before the move"
        );
    }
    // On the redirect URL's own origin, and on hosts that are not loopback (a proxy's inner
    // name), the login starts at once.
    for host in [
        "127.0.0.1:3000",
        "app.internal:8080",
        "localhost.evil.example:3000",
    ] {
        let resp = s.app.clone().oneshot(login_on(host)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{host}");
        assert!(
            location(&resp).starts_with(s.provider.issuer()),
            "{host}: {}",
            location(&resp)
        );
        assert!(resp.headers().get(header::SET_COOKIE).is_some(), "{host}");
    }
}

/// Back, then the callback URL again, while signed in: the session stands, so the browser goes
/// on to the app instead of a "Sign-in expired" page. Without a session it is still refused.
#[tokio::test]
async fn a_replayed_callback_while_signed_in_goes_to_the_app() {
    let s = setup().await;
    let mut jar = Jar::default();
    let start = send(&s.app, &mut jar, get_html("/auth/login?return_to=%2Fme")).await;
    let callback = authorize(&location(&start)).await;
    let first = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    assert_eq!(location(&first), "/me");

    let replay = send(&s.app, &mut jar, get_html(&callback)).await;
    assert_eq!(replay.status(), StatusCode::FOUND);
    assert_eq!(location(&replay), "/");
    assert_eq!(me(&s, &mut jar).await, StatusCode::OK, "the session stands");

    let stranger = serve(&s.app, get_html(&callback)).await;
    assert_eq!(stranger.status(), StatusCode::BAD_REQUEST);
}

/// A wrong client secret is the app's configuration, not an expired sign-in: the page says the
/// provider refused the app's credentials and points at the server log.
#[tokio::test]
async fn a_wrong_client_secret_gets_its_own_page() {
    let s = setup_with(|b| b.client_secret("not-the-secret")).await;
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login").await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let page = body_string(resp).await;
    assert!(
        page.contains("refused this app&#39;s credentials") && page.contains("server log"),
        "{page}"
    );
    assert!(!page.contains("expired"), "{page}");
}
