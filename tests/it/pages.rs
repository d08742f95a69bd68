//! The layer's own pages read as finished: a title, the inline style, a way back to the app,
//! the provider's `error_description` shown escaped, a cancelled sign-in named as one (through
//! the test provider's Cancel button), and confirmation pages that keep their form.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use tower_oidc_auth::testing::{IdpInitiatedLogin, TestProvider};

use crate::helpers::*;

/// What every page of the layer's own carries: its `<title>`, the inline style (light and dark),
/// no script and no external asset.
fn assert_finished(body: &str, title: &str) {
    assert!(
        body.contains(&format!("<title>{title}</title>")),
        "title {title:?}: {body}"
    );
    assert!(body.contains("<style>"), "inline style: {body}");
    assert!(
        body.contains("prefers-color-scheme:dark"),
        "a dark variant: {body}"
    );
    assert!(
        body.contains("name=\"viewport\""),
        "readable on a phone: {body}"
    );
    for external in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!body.contains(external), "{external} in {body}");
    }
}

fn assert_back_link(body: &str) {
    assert!(
        body.contains("<a href=\"/\">Back to the app</a>"),
        "a way back to the app: {body}"
    );
}

/// Guards: the error page's title, style and back link; the provider's `error_description`
/// shown as a detail, escaped.
#[tokio::test]
async fn the_error_page_has_a_title_style_back_link_and_the_escaped_description() {
    let s = setup().await;
    let mut jar = Jar::default();
    let state = login_attempt(&s.app, &mut jar).await;
    let uri = format!(
        "/auth/callback?state={state}&error=server_error&error_description={}",
        urlencode("<script>alert(1)</script> & \"more\"")
    );
    let resp = send(&s.app, &mut jar, get_html(&uri)).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body = body_string(resp).await;
    assert_finished(&body, "Sign-in failed");
    assert_back_link(&body);
    assert!(
        body.contains("The identity provider had an internal error."),
        "{body}"
    );
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;more&quot;"),
        "the description, escaped: {body}"
    );
    assert!(
        body.contains("<code>server_error</code>"),
        "the error code: {body}"
    );
    assert!(
        body.contains("href=\"/auth/login\">Try again</a>"),
        "the retry link: {body}"
    );
}

/// Guards: a long `error_description` is shortened, not shown whole.
#[tokio::test]
async fn a_long_error_description_is_shortened() {
    let s = setup().await;
    let mut jar = Jar::default();
    let state = login_attempt(&s.app, &mut jar).await;
    let long = "x".repeat(5000);
    let uri =
        format!("/auth/callback?state={state}&error=invalid_request&error_description={long}");
    let body = body_string(send(&s.app, &mut jar, get_html(&uri)).await).await;
    assert!(body.contains(&"x".repeat(300)), "{body}");
    assert!(!body.contains(&"x".repeat(301)), "shortened");
}

/// Guards: the test provider's Cancel button (its form shows one), which sends the app
/// `error=access_denied` with the request's `state`, and the page the app then shows: "Sign-in
/// was cancelled", with a retry and a way back.
#[tokio::test]
async fn cancel_at_the_test_provider_shows_sign_in_was_cancelled() {
    // No preset user: the provider shows its login form.
    let provider = TestProvider::builder().start().await;
    let auth = provider.layer_builder(REDIRECT).build().await.unwrap();
    let app = app(&auth);
    let mut jar = Jar::default();
    let resp = send(&app, &mut jar, get_html("/auth/login")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let authorize_url = url::Url::parse(&location(&resp)).unwrap();
    let state = authorize_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client
        .get(authorize_url.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("<title>"), "{form}");
    // The Cancel button, as the browser submits it: its name and value with the form's fields
    // (the hidden fields repeat the authorization request).
    let button = form
        .split("<button")
        .skip(1)
        .find(|b| b.contains(">Cancel</button>"))
        .unwrap_or_else(|| panic!("a Cancel button: {form}"));
    let attr = |name: &str| {
        let start = button.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        button[start..][..button[start..].find('"').unwrap()].to_owned()
    };
    let (name, value) = (attr("name"), attr("value"));
    let mut fields: Vec<(String, String)> = authorize_url.query_pairs().into_owned().collect();
    fields.push((name, value));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let mut post_url = authorize_url.clone();
    post_url.set_query(None);
    let resp = client
        .post(post_url.as_str())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let back = url::Url::parse(resp.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(back.as_str().split('?').next(), Some(REDIRECT));
    let q: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    assert_eq!(values(&q, "error"), ["access_denied"], "{back}");
    assert_eq!(
        values(&q, "state"),
        [state],
        "RFC 6749 4.1.2.1: the state comes back"
    );
    assert!(values(&q, "code").is_empty(), "no code: {back}");

    let callback = format!("{}?{}", back.path(), back.query().unwrap());
    let resp = send(&app, &mut jar, get_html(&callback)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(jar.get("_s").is_none(), "no session");
    let body = body_string(resp).await;
    assert_finished(&body, "Sign-in was cancelled");
    assert!(body.contains("<h1>Sign-in was cancelled</h1>"), "{body}");
    assert!(
        body.contains("The user cancelled the sign-in."),
        "the provider's description: {body}"
    );
    assert!(body.contains(">Try again</a>"), "{body}");
    assert_back_link(&body);
}

/// Guards: the forbidden page's title, style and back link.
#[tokio::test]
async fn the_forbidden_page_has_a_title_style_and_back_link() {
    let s = setup().await;
    let app = Router::new()
        .route("/ops", get(|| async { "ops" }))
        .route_layer(s.auth.require_role("operator"))
        .layer(s.auth.clone());
    let session = s.provider.session_cookie(&s.auth, &user());
    let req = Request::get("/ops")
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, session)
        .body(Body::empty())
        .unwrap();
    let resp = serve(&app, req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = body_string(resp).await;
    assert_finished(&body, "Access denied");
    assert!(body.contains("this page needs role operator"), "{body}");
    assert_back_link(&body);
}

/// Guards: the logout confirmation keeps its form (a POST to the logout route, one submit
/// button) and its way back, in the finished page.
#[tokio::test]
async fn the_logout_confirmation_keeps_its_form() {
    let s = setup().await;
    let session = s.provider.session_cookie(&s.auth, &user());
    let req = Request::get("/auth/logout")
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header(header::COOKIE, session)
        .body(Body::empty())
        .unwrap();
    let resp = serve(&s.app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = body_string(resp).await;
    assert_finished(&body, "Sign out?");
    assert!(
        body.contains("<form method=\"post\" action=\"/auth/logout\""),
        "{body}"
    );
    assert_eq!(
        body.matches("<button type=\"submit\">").count(),
        1,
        "{body}"
    );
    assert!(body.contains(">Sign out</button>"), "{body}");
    assert!(body.contains("<a href=\"/\">Stay signed in</a>"), "{body}");
}

/// Guards: the IdP-initiated login confirmation keeps its form (a GET to the login route with
/// the token, unchanged, as its hidden field) and its way back.
#[tokio::test]
async fn the_login_confirmation_keeps_its_form_and_token() {
    let s = setup().await;
    let session = s.provider.session_cookie(&s.auth, &user());
    let url = s.provider.idp_initiated_login_url(
        "/auth/login",
        &IdpInitiatedLogin::new().organization_id("org_1"),
    );
    let token = url::Url::parse(&format!("http://x{url}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "idp_initiated_login")
        .unwrap()
        .1
        .into_owned();
    let req = Request::get(url)
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header(header::COOKIE, session)
        .body(Body::empty())
        .unwrap();
    let resp = serve(&s.app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = body_string(resp).await;
    assert_finished(&body, "Switch account?");
    assert!(
        body.contains("<form method=\"get\" action=\"/auth/login\""),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "<input type=\"hidden\" name=\"idp_initiated_login\" value=\"{token}\">"
        )),
        "the token, unchanged: {body}"
    );
    assert!(body.contains(">Continue</button>"), "{body}");
    assert!(body.contains("<a href=\"/\">Stay signed in</a>"), "{body}");
}

/// Guards: the unavailable page (a session the provider cannot renew now) has its title, style,
/// a retry of the same page and a way back.
#[tokio::test]
async fn the_unavailable_page_has_a_title_style_retry_and_back_link() {
    let s = setup().await;
    let (mut jar, _) = signed_in(&s).await;
    // Past the access token's expiry and the clock leeway, with the token endpoint down.
    s.clock.advance(std::time::Duration::from_secs(400));
    s.provider
        .set_token_failure(Some(tower_oidc_auth::testing::Failure::Status(503)));
    let resp = send(&s.app, &mut jar, get_html("/me")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_string(resp).await;
    assert_finished(&body, "Temporarily unavailable");
    assert!(
        body.contains("href=\"/me\">Try again</a>"),
        "a retry of the same page: {body}"
    );
    assert_back_link(&body);
}

/// Guards: "Back to the app" leads to the app's own home (its session path), not the host's
/// root, which in a multi-app server is another app, on every page that has the link.
#[tokio::test]
async fn the_back_link_goes_to_the_apps_home() {
    let provider = TestProvider::builder().user(user()).start().await;
    let auth = provider
        .layer_builder("http://127.0.0.1:3000/billing/auth/callback")
        .base_path("/billing/auth")
        .session_path("/billing")
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/billing/ops", get(|| async { "ops" }))
        .route_layer(auth.require_role("operator"))
        .layer(auth.clone());
    // The forbidden page.
    let session = provider.session_cookie(&auth, &user());
    let req = Request::get("/billing/ops")
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, session)
        .body(Body::empty())
        .unwrap();
    let resp = serve(&app, req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = body_string(resp).await;
    assert!(
        body.contains("<a href=\"/billing\">Back to the app</a>"),
        "{body}"
    );
    // An error page of the callback.
    let mut jar = Jar::default();
    let resp = send(
        &app,
        &mut jar,
        get_html("/billing/auth/callback?state=nope&code=x"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = body_string(resp).await;
    assert!(
        body.contains("<a href=\"/billing\">Back to the app</a>"),
        "{body}"
    );
}
