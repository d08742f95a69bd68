//! Two apps (two client ids, two ports) sharing one provider session: single sign-on in, and
//! back-channel logout out. One browser cookie jar for both, as browsers ignore ports.

use http::{header, StatusCode};
use tower_oidc_auth::testing::TestProvider;

use crate::helpers::*;

// This suite runs twice: with sessions in cookies (`crate::multi_app`) and in a session store
// (`crate::in_store::multi_app`); `SESSIONS` says which. The helpers below shadow the glob import.
use super::SESSIONS;

#[allow(dead_code)]
async fn setup() -> Setup {
    setup_in(SESSIONS, |c| c).await
}

#[allow(dead_code)]
async fn setup_with(
    tweak: impl FnOnce(tower_oidc_auth::AuthLayerBuilder) -> tower_oidc_auth::AuthLayerBuilder,
) -> Setup {
    setup_in(SESSIONS, tweak).await
}

struct App {
    router: axum::Router,
    origin: String,
}

/// Follows an authorize URL at the provider with the browser's provider cookie.
/// Returns the callback path+query and any provider cookie set.
async fn provider_get(url: &str, sso: &Option<String>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(url);
    if let Some(c) = sso {
        req = req.header(header::COOKIE, c);
    }
    req.send().await.unwrap()
}

fn path_and_query(location: &str) -> String {
    let u = url::Url::parse(location).unwrap();
    format!("{}?{}", u.path(), u.query().unwrap_or(""))
}

#[tokio::test]
async fn single_sign_on_and_back_channel_logout_across_two_apps() {
    // Ports first: the provider needs the apps' back-channel URIs.
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (oa, ob) = (
        format!("http://{}", la.local_addr().unwrap()),
        format!("http://{}", lb.local_addr().unwrap()),
    );
    let provider = TestProvider::builder()
        .client_id("app-a")
        .client_secret("secret-a")
        .backchannel_logout_uri(format!("{oa}/auth/backchannel-logout"))
        .client(
            "app-b",
            "secret-b",
            Some(format!("{ob}/auth/backchannel-logout")),
        )
        .start()
        .await;
    let layer = |origin: &str, id: &str, secret: &str| {
        let builder = provider
            .layer_builder(format!("{origin}/auth/callback"))
            .client_id(id)
            .client_secret(secret)
            .post_logout_redirect_url(format!("{origin}/"));
        SESSIONS.apply(builder, None)
    };
    let auth_a = layer(&oa, "app-a", "secret-a").build().await.unwrap();
    let auth_b = layer(&ob, "app-b", "secret-b").build().await.unwrap();
    let a = App {
        router: app(&auth_a),
        origin: oa.clone(),
    };
    let b = App {
        router: app(&auth_b),
        origin: ob.clone(),
    };
    for (listener, router) in [(la, a.router.clone()), (lb, b.router.clone())] {
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }

    let mut jar = Jar::default(); // one browser, both apps
    let mut sso: Option<String> = None;

    // 1. Log into A with the provider's form.
    let resp = send(&a.router, &mut jar, get_html("/auth/login?return_to=%2Fme")).await;
    let authorize = location(&resp);
    let form = provider_get(&authorize, &sso).await;
    assert_eq!(form.status(), StatusCode::OK, "a login form");
    assert!(form.text().await.unwrap().contains("name=\"password\""));
    let mut fields: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    fields.push(("login".into(), "ada@example.com".into()));
    fields.push(("password".into(), "pw".into()));
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/oauth/authorize", provider.issuer()))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&fields)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    sso = resp
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| cookie_pair(&parse_set_cookie(v.to_str().unwrap())));
    assert!(sso.as_deref().unwrap().starts_with("testprovider_sso="));
    let callback = path_and_query(resp.headers()[header::LOCATION].to_str().unwrap());
    let resp = send(&a.router, &mut jar, get_html(&callback)).await;
    assert_eq!(location(&resp), "/me");
    let me_a = body_string(send(&a.router, &mut jar, get_json("/me")).await).await;
    let me_a: serde_json::Value = serde_json::from_str(&me_a).unwrap();
    assert_eq!(me_a["sub"], "ada@example.com");

    // 2. Open B: signed in without a form.
    let resp = send(&b.router, &mut jar, get_html("/me")).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "B has no session yet");
    let resp = send(&b.router, &mut jar, get_html(&location(&resp))).await;
    let resp = provider_get(&location(&resp), &sso).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "no form: single sign-on"
    );
    let callback = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(callback.starts_with(&b.origin));
    let resp = send(&b.router, &mut jar, get_html(&path_and_query(&callback))).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let me_b = body_string(send(&b.router, &mut jar, get_json("/me")).await).await;
    let me_b: serde_json::Value = serde_json::from_str(&me_b).unwrap();
    assert_eq!(me_b["sub"], me_a["sub"]);
    assert_eq!(me_b["sid"], me_a["sid"], "one provider session");
    assert_eq!(me_b["aud"], serde_json::json!(["app-b"]));

    // Both apps' cookies live side by side in the one jar, each app reading only its own.
    let names = jar.names();
    assert_eq!(
        names.iter().filter(|n| n.ends_with("_s")).count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        send(&a.router, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );

    // 3. Log out of A: the provider calls both apps' back-channel endpoints.
    let resp = send(&a.router, &mut jar, logout_link()).await;
    let end_session = location(&resp);
    let resp = provider_get(&end_session, &sso).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()[header::LOCATION].to_str().unwrap(),
        format!("{}/", a.origin)
    );
    assert_eq!(provider.counts().backchannel_deliveries, 2);
    assert_eq!(provider.counts().backchannel_failures, 0);

    // B's next request is unauthenticated, and its cookies are cleared.
    let resp = send(&b.router, &mut jar, get_json("/me")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        jar.names().iter().all(|n| !n.ends_with("_s")),
        "{:?}",
        jar.names()
    );
}
