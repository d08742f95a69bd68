//! Property tests for the parsers of untrusted input. (Fuzz targets live in `fuzz/`.)

use axum::body::Body;
use http::{header, HeaderValue, Request};
use proptest::prelude::*;
use tower::ServiceExt;
use tower_oidc_auth::__private::{fuzz_cookies, fuzz_query, fuzz_return_to};

use crate::helpers::*;

fn same_origin(accepted: &str) -> bool {
    let base = url::Url::parse("https://app.example/").unwrap();
    match base.join(accepted) {
        Ok(joined) => joined.origin() == base.origin(),
        Err(_) => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn return_to_accepts_only_same_origin_paths(target in any::<String>()) {
        if let Some(accepted) = fuzz_return_to(&target) {
            prop_assert!(accepted.starts_with('/'));
            prop_assert!(same_origin(accepted), "{:?} leaves the origin", accepted);
        }
    }

    #[test]
    fn return_to_tricky_alphabet(target in "[/\\\\%2fF5cC:@a.\\t ]{0,12}") {
        if let Some(accepted) = fuzz_return_to(&target) {
            prop_assert!(same_origin(accepted), "{:?} leaves the origin", accepted);
            prop_assert!(!accepted.contains('\\'));
        }
    }

    #[test]
    fn any_cookie_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_cookies(&bytes);
    }

    #[test]
    fn any_query_never_panics(query in any::<String>()) {
        fuzz_query(&query);
    }
}

/// Any byte string as a Cookie header through the whole layer: never a panic or a 5xx.
#[test]
fn any_cookie_through_the_layer() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());
    let valid = s.provider.session_cookie(&s.auth, &user());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..400),
        any::<bool>(),
        0usize..valid.len(),
    );
    runner
        .run(&strategy, |(bytes, mutate_valid, at)| {
            // Either random bytes, or the valid cookie with random bytes spliced in.
            let raw = if mutate_valid {
                let mut v = valid.as_bytes().to_vec();
                v.splice(at..at, bytes.iter().copied());
                v
            } else {
                bytes
            };
            let Ok(value) = HeaderValue::from_bytes(&raw) else {
                return Ok(());
            };
            let req = Request::get("/me")
                .header(header::ACCEPT, "application/json")
                .header(header::COOKIE, value)
                .body(Body::empty())
                .unwrap();
            let resp = rt.block_on(s.app.clone().oneshot(req)).unwrap();
            prop_assert!(!resp.status().is_server_error(), "{}", resp.status());
            Ok(())
        })
        .unwrap();
}
