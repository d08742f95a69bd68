//! Unit tests of the configuration.

use base64::Engine;

use super::env::parse_duration;
use super::*;
use base64::engine::general_purpose::STANDARD;

/// `n` bytes that pass for random: SHA-256 of `seed` and a counter.
fn key(seed: u8, n: usize) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    (0u8..)
        .flat_map(|i| Sha256::digest([seed, i]).to_vec())
        .take(n)
        .collect()
}

fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn from_env_scalekit_and_rotation() {
    let k1 = STANDARD.encode(key(1, 64));
    let k2 = STANDARD.encode(key(2, 80));
    let keys = format!("{k1}, {k2}");
    let cfg = AuthLayerBuilder::from_lookup(env(&[
        ("SCALEKIT_ENVIRONMENT_URL", "https://x.scalekit.dev"),
        ("SCALEKIT_CLIENT_ID", "skc_1"),
        ("SCALEKIT_CLIENT_SECRET", "shh"),
        ("AUTH_REDIRECT_URL", "https://app/cb"),
        ("AUTH_COOKIE_KEY", &keys),
    ]))
    .unwrap();
    assert!(cfg.provider.unwrap().is_scalekit());
    assert_eq!(cfg.cookie_keys.len(), 2);
    assert_eq!(cfg.cookie_keys[1].len(), 80);
}

/// `SCALEKIT_API_AUDIENCE`: optional, comma-separated, trimmed, empty parts ignored.
#[test]
fn from_env_reads_api_audiences() {
    let key = STANDARD.encode(key(1, 64));
    let base = [
        ("SCALEKIT_ENVIRONMENT_URL", "https://x.scalekit.dev"),
        ("SCALEKIT_CLIENT_ID", "skc_1"),
        ("SCALEKIT_CLIENT_SECRET", "shh"),
        ("AUTH_REDIRECT_URL", "https://app/cb"),
        ("AUTH_COOKIE_KEY", key.as_str()),
    ];
    let cfg = AuthLayerBuilder::from_lookup(env(&base)).unwrap();
    assert!(cfg.audiences.is_empty());
    for (value, expected) in [
        ("https://api.example.com", vec!["https://api.example.com"]),
        (
            " https://api.example.com , ,deployment-api.acmecorp.com,",
            vec!["https://api.example.com", "deployment-api.acmecorp.com"],
        ),
        (" , ", vec![]),
        ("", vec![]),
    ] {
        let mut vars = base.to_vec();
        vars.push(("SCALEKIT_API_AUDIENCE", value));
        let cfg = AuthLayerBuilder::from_lookup(env(&vars)).unwrap();
        assert_eq!(cfg.audiences, expected, "{value:?}");
    }
}

#[test]
fn from_env_errors_name_the_variable() {
    let short = STANDARD.encode([1u8; 32]);
    let err = AuthLayerBuilder::from_lookup(env(&[
        ("OIDC_ISSUER", "https://id"),
        ("OIDC_CLIENT_ID", "c"),
        ("OIDC_CLIENT_SECRET", "s"),
        ("AUTH_REDIRECT_URL", "https://app/cb"),
        ("AUTH_COOKIE_KEY", &short),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("AUTH_COOKIE_KEY") && err.contains("32 bytes"),
        "{err}"
    );
    let err = AuthLayerBuilder::from_lookup(env(&[("OIDC_ISSUER", "https://id")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("OIDC_CLIENT_ID"), "{err}");
    let err = AuthLayerBuilder::from_lookup(env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SCALEKIT_ENVIRONMENT_URL"), "{err}");
}

#[test]
fn from_env_webhook_secret_enables_the_route() {
    let keys = STANDARD.encode(key(1, 64));
    let base = [
        ("SCALEKIT_ENVIRONMENT_URL", "https://x.scalekit.dev"),
        ("SCALEKIT_CLIENT_ID", "skc_1"),
        ("SCALEKIT_CLIENT_SECRET", "shh"),
        ("AUTH_REDIRECT_URL", "https://app/cb"),
        ("AUTH_COOKIE_KEY", keys.as_str()),
    ];
    let cfg = AuthLayerBuilder::from_lookup(env(&base)).unwrap();
    assert!(cfg.webhook_secret.is_none());
    let mut with = base.to_vec();
    with.push((
        "SCALEKIT_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ));
    let cfg = AuthLayerBuilder::from_lookup(env(&with)).unwrap();
    assert_eq!(
        cfg.webhook_secret.as_ref().map(Secret::expose),
        Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );
    with.pop();
    with.push(("SCALEKIT_WEBHOOK_SECRET", "whsec_not-base64!"));
    let err = AuthLayerBuilder::from_lookup(env(&with))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SCALEKIT_WEBHOOK_SECRET"), "{err}");
    assert!(
        !err.contains("not-base64"),
        "the secret is not echoed: {err}"
    );
}

#[test]
fn debug_redacts_secrets() {
    let cfg = AuthLayerBuilder::new()
        .client_secret("hunter2-secret")
        .cookie_key(crate::testing::cookie_key(42));
    let s = format!("{cfg:?}");
    assert!(!s.contains("hunter2") && !s.contains("42, 42") && s.contains("REDACTED"));
}

#[test]
fn loopback_detection() {
    for (u, ok) in [
        ("http://127.0.0.1:3000/cb", true),
        ("http://127.1.2.3/cb", true),
        ("http://localhost/cb", true),
        ("http://[::1]:80/cb", true),
        ("http://example.com/cb", false),
        ("http://10.0.0.1/cb", false),
        ("https://127.0.0.1/cb", false),
    ] {
        assert_eq!(is_loopback_http(&url::Url::parse(u).unwrap()), ok, "{u}");
    }
}

#[test]
fn durations_parse() {
    for (text, secs) in [
        ("25s", 25),
        ("8h", 8 * 3600),
        ("7d", 7 * 86_400),
        ("90m", 5400),
        ("1h30m", 5400),
        ("1d2h3m4s", 86_400 + 7200 + 180 + 4),
        (" 7d\n", 7 * 86_400),
        ("0h5m", 300),
        ("007s", 7),
    ] {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(secs)),
            "{text:?}"
        );
    }
}

#[test]
fn durations_refused() {
    for text in [
        "",
        " ",
        "25",
        "s",
        "-5s",
        "+5s",
        "5",
        "5 s",
        "1h 30m",
        "1.5h",
        "5S",
        "5ms",
        "5sec",
        "5w",
        "5y",
        "0s",
        "0d0h",
        "30m1h",
        "1h1h",
        "1hh",
        "h1",
        "5s,",
        "1_000s",
        "٣s",
        "18446744073709551616s",
        "18446744073709551615s",
        "9223372036854775808s",
        "106751991167301d",
        "213503982334602d",
    ] {
        let err = parse_duration(text).expect_err(text);
        assert!(err.contains("expected a duration"), "{text:?}: {err}");
    }
    // The largest accepted value fits an i64 of seconds.
    assert_eq!(
        parse_duration("9223372036854775807s"),
        Ok(Duration::from_secs(i64::MAX as u64))
    );
}

#[test]
fn from_env_reads_the_session_lifetime() {
    let key = STANDARD.encode(key(1, 64));
    let base = [
        ("OIDC_ISSUER", "https://id"),
        ("OIDC_CLIENT_ID", "c"),
        ("OIDC_CLIENT_SECRET", "s"),
        ("AUTH_REDIRECT_URL", "https://app/cb"),
        ("AUTH_COOKIE_KEY", key.as_str()),
    ];
    let cfg = AuthLayerBuilder::from_lookup(env(&base)).unwrap();
    assert_eq!(cfg.session_max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(cfg.session_idle_timeout, None);
    let mut vars = base.to_vec();
    vars.push(("AUTH_SESSION_MAX_AGE", "25s"));
    vars.push(("AUTH_SESSION_IDLE_TIMEOUT", "8h"));
    let cfg = AuthLayerBuilder::from_lookup(env(&vars)).unwrap();
    assert_eq!(cfg.session_max_age, Duration::from_secs(25));
    assert_eq!(
        cfg.session_idle_timeout,
        Some(Duration::from_secs(8 * 3600))
    );
    for (var, value) in [
        ("AUTH_SESSION_MAX_AGE", "7 days"),
        ("AUTH_SESSION_MAX_AGE", "0s"),
        ("AUTH_SESSION_IDLE_TIMEOUT", "-1h"),
        ("AUTH_SESSION_IDLE_TIMEOUT", "3600"),
    ] {
        let mut vars = base.to_vec();
        vars.push((var, value));
        let err = AuthLayerBuilder::from_lookup(env(&vars)).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Env { var: v, .. } if *v == var),
            "{var}={value}: {err}"
        );
        assert!(err.to_string().contains(var), "{err}");
    }
}

#[test]
fn paths_normalize() {
    assert_eq!(normalize_path("p", "/auth/").unwrap(), "/auth");
    assert_eq!(normalize_path("p", "/").unwrap(), "/");
    assert!(normalize_path("p", "auth").is_err());
    assert!(normalize_path("p", "//x").is_err());
}

/// The builder's former name still compiles, as a deprecated alias of the same type.
#[test]
#[allow(deprecated)]
fn former_name_is_an_alias() {
    let builder: crate::AuthConfig = AuthLayerBuilder::new();
    let _: AuthLayerBuilder = builder;
}

/// The parts of `from_env` read alone: an app that sets the redirect URL in code reads only the
/// provider and the keys, and each part reads only its own variables.
#[test]
fn from_env_parts_compose() {
    let keys = STANDARD.encode(key(3, 64));
    let vars = [
        ("OIDC_ISSUER", " https://id.example.com "),
        ("OIDC_CLIENT_ID", "app"),
        ("OIDC_CLIENT_SECRET", "shh"),
        ("SCALEKIT_API_AUDIENCE", "https://api, ,https://other"),
        ("AUTH_COOKIE_KEY", &keys),
    ];
    let provider = Provider::from_lookup(&env(&vars)).unwrap().unwrap();
    assert_eq!(provider.issuer(), "https://id.example.com");
    assert!(!provider.is_scalekit());

    let cfg = AuthLayerBuilder::new()
        .provider_from_lookup(&env(&vars))
        .unwrap();
    assert_eq!(cfg.client_id.as_deref(), Some("app"));
    assert_eq!(cfg.audiences, ["https://api", "https://other"]);
    assert!(
        cfg.cookie_keys.is_empty(),
        "the provider part reads no keys"
    );
    assert!(cfg.redirect_url.is_none());

    let cfg = cfg
        .redirect_url("https://app/cb")
        .cookie_keys_from_lookup(&env(&vars))
        .unwrap()
        .webhook_secret_from_lookup(&env(&vars))
        .unwrap();
    assert_eq!(cfg.cookie_keys, [key(3, 64)]);
    assert!(cfg.webhook_secret.is_none(), "unset: unchanged");

    // Scalekit takes its own credentials.
    let scalekit = [
        ("SCALEKIT_ENVIRONMENT_URL", "https://x.scalekit.dev"),
        ("OIDC_CLIENT_ID", "app"),
    ];
    let provider = Provider::from_lookup(&env(&scalekit)).unwrap().unwrap();
    assert!(provider.is_scalekit());
    let err = AuthLayerBuilder::new()
        .provider_from_lookup(&env(&scalekit))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SCALEKIT_CLIENT_ID"), "{err}");
    // Both providers, or one set but empty: the environment does not say which it means.
    let both = [
        ("SCALEKIT_ENVIRONMENT_URL", "https://x.scalekit.dev"),
        ("OIDC_ISSUER", "https://id.example.com"),
    ];
    let err = Provider::from_lookup(&env(&both)).unwrap_err().to_string();
    assert!(err.contains("OIDC_ISSUER is set too"), "{err}");
    let err = Provider::from_lookup(&env(&[("OIDC_ISSUER", "  ")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OIDC_ISSUER") && err.contains("empty"),
        "{err}"
    );
    assert!(Provider::from_lookup(&env(&[])).unwrap().is_none());

    let err = AuthLayerBuilder::new()
        .cookie_keys_from_lookup(&env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("AUTH_COOKIE_KEY"), "{err}");
}

/// The setters renamed in 0.2 keep their former names, deprecated, with the same effect.
#[test]
#[allow(deprecated)]
fn former_setter_names_still_work() {
    let builder = AuthLayerBuilder::new().bearer(false).cookie_name("app_1");
    assert!(!builder.bearer);
    assert_eq!(builder.cookie_name.as_deref(), Some("app_1"));
    let builder = AuthLayerBuilder::new()
        .accept_bearer_tokens(false)
        .cookie_name_prefix("app_2");
    assert!(!builder.bearer);
    assert_eq!(builder.cookie_name.as_deref(), Some("app_2"));
}

/// Every setting is checked before any I/O: the provider here does not exist, and each broken
/// setting is reported by name.
#[test]
fn validate_reports_each_setting_without_io() {
    let good = || {
        AuthLayerBuilder::new()
            .provider(Provider::discover("https://idp.invalid"))
            .client_id("app")
            .client_secret("shh")
            .redirect_url("https://app.example.com/auth/callback")
            .cookie_key(crate::testing::cookie_key(5))
    };
    good().validate().unwrap();
    type Break = fn(AuthLayerBuilder) -> AuthLayerBuilder;
    let cases: &[(&str, Break)] = &[
        ("client_id", |b| b.client_id("")),
        ("redirect_url", |b| {
            b.redirect_url("http://app.example.com/cb")
        }),
        ("redirect_url", |b| {
            b.redirect_url("https://app.example.com/cb?x=1")
        }),
        ("redirect_url", |b| b.redirect_url("not a url")),
        ("session_path", |b| b.session_path("/app")),
        ("cookie_name_prefix", |b| b.cookie_name_prefix("bad name")),
        ("webhook_secret", |b| b.webhook_secret("whsec_!!")),
        ("session_max_age", |b| b.session_max_age(Duration::ZERO)),
        ("session_idle_timeout", |b| {
            b.session_idle_timeout(Duration::ZERO)
        }),
        ("max_login_attempts", |b| b.max_login_attempts(0)),
        ("algorithms", |b| b.algorithms([])),
        ("post_logout_redirect_url", |b| {
            b.post_logout_redirect_url("::nope")
        }),
    ];
    for (setting, break_it) in cases {
        let error = break_it(good()).validate().unwrap_err();
        let what = match &error {
            ConfigError::Invalid { what, .. } | ConfigError::InvalidUrl { what, .. } => *what,
            ConfigError::Missing(what) => *what,
            other => panic!("{setting}: unexpected {other:?}"),
        };
        assert_eq!(what, *setting, "{error}");
    }
    let no_key = AuthLayerBuilder {
        cookie_keys: Vec::new(),
        ..good()
    };
    assert!(matches!(
        no_key.validate(),
        Err(ConfigError::Missing("cookie_key"))
    ));
}

/// Each newcomer mistake is reported in a line or two that names the cause and the fix.
#[test]
fn messages_name_the_cause_and_the_fix() {
    let good = || {
        AuthLayerBuilder::new()
            .provider(Provider::discover("https://id.example.com"))
            .client_id("app")
            .client_secret("shh")
            .redirect_url("https://app.example.com/auth/callback")
            .cookie_key(crate::testing::cookie_key(1))
    };
    let message = |b: AuthLayerBuilder| b.validate().unwrap_err().to_string();
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "no client id",
            message(AuthLayerBuilder {
                client_id: None,
                ..good()
            }),
            &[
                "missing client id",
                "SCALEKIT_CLIENT_ID",
                "OIDC_CLIENT_ID",
                ".client_id()",
            ],
        ),
        (
            "a 32-byte key",
            message(AuthLayerBuilder {
                cookie_keys: vec![vec![7; 16].into_iter().chain(1..=16).collect()],
                ..good()
            }),
            &["32 bytes", "at least 64", "openssl rand -base64 64"],
        ),
        (
            "a constant key",
            message(AuthLayerBuilder {
                cookie_keys: vec![vec![0; 64]],
                ..good()
            }),
            &["not random", "openssl rand -base64 64"],
        ),
        (
            "an issuer without a scheme",
            message(good().provider(Provider::discover("id.example.com"))),
            &["no scheme", "https://id.example.com", "OIDC_ISSUER"],
        ),
        (
            "a malformed cookie key",
            AuthLayerBuilder::new()
                .cookie_keys_from_lookup(&env(&[("AUTH_COOKIE_KEY", "not base64!")]))
                .unwrap_err()
                .to_string(),
            &["AUTH_COOKIE_KEY", "base64", "openssl rand -base64 64"],
        ),
    ];
    for (mistake, message, words) in cases {
        assert!(message.lines().count() <= 2, "{mistake}: {message}");
        for word in words {
            assert!(
                message.contains(word),
                "{mistake}: {word:?} not in {message:?}"
            );
        }
    }
}

/// An issuer nobody answers at: the message says which URL, what failed at the bottom of the
/// chain, and what to check; the Debug that `fn main() -> Result<..>` prints lists the causes.
#[tokio::test]
async fn an_unreachable_issuer_names_the_url_and_the_cause() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = AuthLayerBuilder::new()
        .provider(Provider::discover(format!("http://127.0.0.1:{port}")))
        .client_id("app")
        .client_secret("shh")
        .redirect_url("http://127.0.0.1:3000/auth/callback")
        .cookie_key(crate::testing::cookie_key(1))
        .build()
        .await
        .unwrap_err();
    let message = error.to_string();
    for word in [
        &format!("http://127.0.0.1:{port}/.well-known/openid-configuration") as &str,
        "refused",
        "Is the issuer URL right?",
    ] {
        assert!(
            message
                .to_ascii_lowercase()
                .contains(&word.to_ascii_lowercase()),
            "{word:?} not in {message}"
        );
    }
    let debug = format!("{error:?}");
    assert!(debug.starts_with(&message), "{debug}");
    assert!(
        debug.contains("Caused by:") && debug.contains("cannot reach the provider"),
        "{debug}"
    );
}

/// Threat: line breaks inside `AUTH_COOKIE_KEY` are dropped so that `openssl rand -base64 64`
/// (two lines) works, but two unpadded keys on two lines, meant as a rotation, were joined into
/// one 129-byte key that is neither. Only the wrapping of one key (lines of 64 or 76 characters,
/// as `openssl` and `base64` print them) is joined; anything else is refused with the hint to
/// separate keys with commas.
#[test]
fn two_unpadded_keys_separated_by_a_newline_are_not_merged_into_one() {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let k1: Vec<u8> = (0..64u32).map(|i| (i * 97 + 13) as u8).collect();
    let k2: Vec<u8> = (0..64u32).map(|i| (i * 151 + 7) as u8).collect();
    for sep in ["\n", "\r\n", " "] {
        let text = format!(
            "{}{sep}{}",
            STANDARD_NO_PAD.encode(&k1),
            STANDARD_NO_PAD.encode(&k2)
        );
        let r = super::env::decode_key(&text);
        let err = r.expect_err(&format!("{sep:?}: merged"));
        assert!(err.contains("comma"), "{err}");
    }
    // One key wrapped as `openssl rand -base64 64` (64 a line) and `base64` (76 a line) prints
    // it: joined.
    let key: Vec<u8> = (0..64u32).map(|i| (i * 193 + 1) as u8).collect();
    let b64 = STANDARD.encode(&key);
    for width in [64, 76] {
        let wrapped = b64
            .as_bytes()
            .chunks(width)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(super::env::decode_key(&wrapped).unwrap(), key, "{width}");
    }
    // A wrapped key with a short line in the middle is not one key.
    let broken = format!("{}\n{}\n{}", &b64[..40], &b64[40..64], &b64[64..]);
    assert!(super::env::decode_key(&broken).is_err());
}
