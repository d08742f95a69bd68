//! No token, code, cookie value or secret ever appears in logs, spans, error pages or Debug
//! output.

#[path = "it/helpers/mod.rs"]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helpers::*;
use http::StatusCode;
use tower_oidc_auth::testing::Failure;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn full_flow_logs_no_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    // Spans too: their fields (recorded as the decision is made) are printed when they close.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(
            tracing_subscriber::fmt::format::FmtSpan::NEW
                | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
        )
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // The hooks see the tokens: what they are given prints none (their Debug goes into
    // `debug` below), and the layer logs none around them.
    let told = Arc::new(Mutex::new(String::new()));
    let (t1, t2, t3) = (told.clone(), told.clone(), told.clone());
    let s = setup_with(move |b| {
        b.on_login(move |ctx| {
            t1.lock()
                .unwrap()
                .push_str(&format!("{ctx:?} {:?}", ctx.access_token));
            async { Ok(tower_oidc_auth::LoginDecision::Allow) }
        })
        .on_refresh(move |ctx| {
            t2.lock().unwrap().push_str(&format!("{ctx:?}"));
            async { Ok(tower_oidc_auth::LoginDecision::Allow) }
        })
        .on_logout(move |ctx| {
            t3.lock().unwrap().push_str(&format!("{ctx:?}"));
            async { Ok(()) }
        })
    })
    .await;
    let mut pages = String::new();
    let mut jar = Jar::default();
    let resp = login(&s, &mut jar, "/auth/login?return_to=%2Fme").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    // A refresh, a failed refresh, a refused ID token, a failed exchange: every warn path.
    s.clock.advance(Duration::from_secs(301));
    assert_eq!(
        send(&s.app, &mut jar, get_json("/me")).await.status(),
        StatusCode::OK
    );
    s.clock.advance(Duration::from_secs(400));
    s.provider.set_token_failure(Some(Failure::Status(503)));
    let resp = send(&s.app, &mut jar.clone(), get_html("/me")).await;
    pages.push_str(&body_string(resp).await);
    s.provider
        .set_token_failure(Some(Failure::OAuthError("invalid_grant".into())));
    let resp = send(&s.app, &mut jar.clone(), get_json("/me")).await;
    pages.push_str(&body_string(resp).await);
    s.provider.set_token_failure(None);
    s.provider
        .set_id_token_defect(Some(tower_oidc_auth::testing::IdTokenDefect::WrongNonce));
    let mut other = Jar::default();
    let resp = login(&s, &mut other, "/auth/login").await;
    pages.push_str(&body_string(resp).await);
    s.provider.set_id_token_defect(None);
    let resp = send(&s.app, &mut jar, logout_link()).await;
    pages.push_str(&format!("{:?}", resp.headers().get("set-cookie")));

    let told = told.lock().unwrap().clone();
    assert!(
        told.contains("LoginContext")
            && told.contains("RefreshContext")
            && told.contains("LogoutContext"),
        "every hook ran: {told}"
    );
    let debug = format!("{:?} {:?} {told}", s.auth, s.provider);
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("code exchange") || logs.contains("signed in"),
        "logs were captured"
    );
    // The decisions' spans were captured, with their fields.
    for span in [
        "oidc.callback",
        "outcome=\"success\"",
        "oidc.refresh",
        "oidc.provider_request",
        "endpoint=\"token\"",
    ] {
        assert!(logs.contains(span), "no {span} in the logs");
    }

    let mut secrets = s.provider.issued_secrets();
    assert!(
        secrets.len() >= 6,
        "tokens and codes were issued: {}",
        secrets.len()
    );
    secrets.push(s.provider.client_secret().to_owned());
    for c in &jar.cookies {
        secrets.push(c.value.clone());
    }
    for secret in &secrets {
        // Compare on a distinctive slice, long enough to be unique.
        let needle = &secret[secret.len().saturating_sub(24)..];
        assert!(!logs.contains(needle), "a secret appears in the logs");
        assert!(!pages.contains(needle), "a secret appears in an error page");
        assert!(!debug.contains(needle), "a secret appears in Debug output");
    }
}
