//! Fuzz targets over a whole layer's state (issue 12): back-channel logout, webhooks, provider
//! JSON and Management API answers, one entry point per target.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::clock::SharedClock;
use crate::cookies::CookieCodec;
use crate::provider::{ClientAuthMethod, ProviderMetadata, TokenClient};
use crate::provider::{HttpClient, Jwks};
use crate::state::{Settings, Shared};
use crate::verify::{Expectations, Verifier};

/// The fixed time of the fuzzing layer, so seeds with timestamps stay valid.
pub(super) const FUZZ_NOW: i64 = 1_700_000_000;
pub(super) const FUZZ_ISSUER: &str = "https://issuer.example";
pub(super) const FUZZ_CLIENT: &str = "client";
/// The webhook secret of the fuzzing layer (the seeds are signed with it).
pub const FUZZ_WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A P-256 key made for the fuzz targets only (PKCS#8 DER, base64): it signs logout tokens so
/// the fuzzer reaches past the signature. Its public half is `fuzz-es256` in
/// [`FUZZ_LAYER_JWKS`]. It protects nothing.
pub(super) const FUZZ_SIGNING_KEY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAqkVOgLkAka6skse8YsURFROYdaBfAJkculydqAZHEmhRANCAAQ+elw7X1N7Bkx7Y7TGtADYuwL0slQs3ZtHAw0Gcl9z2Oa+nUePqoiPLUkCNUbR/JvcRvmvEoA1ln9JVvZM7Gta";
/// The fuzzing layer's keys: the fuzz JWKS and the public half of the signing key.
pub(super) const FUZZ_LAYER_JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},{"kty":"EC","kid":"k2","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uE3MvvkE","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},{"kty":"EC","kid":"fuzz-es256","crv":"P-256","x":"PnpcO19TewZMe2O0xrQA2LsC9LJULN2bRwMNBnJfc9g","y":"5r6dR4-qiI8tSQI1RtH8m9xG-a8SgDWWf0lW9kzsa1o"}]}"#;

/// A whole layer state built without the network: provider metadata given, keys loaded from
/// [`FUZZ_LAYER_JWKS`] (no refetch is ever attempted: the JWKS URL is `127.0.0.1:9` and the
/// refetch interval infinite), a fixed clock, small caches, and a webhook secret.
pub(super) fn fuzz_shared() -> &'static Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let clock: SharedClock = Arc::new(crate::ManualClock::new(FUZZ_NOW));
        let http = HttpClient::new(Duration::from_millis(100), 1024);
        let meta = ProviderMetadata {
            issuer: FUZZ_ISSUER.into(),
            authorization_endpoint: format!("{FUZZ_ISSUER}/oauth/authorize"),
            token_endpoint: "http://127.0.0.1:9/oauth/token".into(),
            jwks_uri: "http://127.0.0.1:9/keys".into(),
            ..ProviderMetadata::default()
        };
        let jwks = Jwks::new(
            http.clone(),
            meta.jwks_uri.clone(),
            vec![
                jsonwebtoken::Algorithm::RS256,
                jsonwebtoken::Algorithm::ES256,
            ],
            clock.clone(),
            i64::MAX,
        );
        jwks.load_json(FUZZ_LAYER_JWKS);
        let verifier = Verifier::new(
            jwks,
            Expectations {
                issuer: FUZZ_ISSUER.into(),
                client_id: FUZZ_CLIENT.into(),
                audiences: Vec::new(),
                leeway: 60,
                id_token_max_age: 600,
            },
            clock.clone(),
            64,
        );
        let settings = Settings {
            client_id: FUZZ_CLIENT.into(),
            redirect_url: "https://app.example/auth/callback".into(),
            login_path: "/auth/login".into(),
            callback_path: "/auth/callback".into(),
            logout_path: "/auth/logout".into(),
            post_logout_url: "https://app.example/".into(),
            scope: "openid".into(),
            authorize_params: Vec::new(),
            max_login_attempts: 5,
            login_timeout: 600,
            session_max_age: 7 * 24 * 3600,
            session_idle_timeout: None,
            token_revocation_timeout: Duration::from_secs(2),
            default_return: "/".into(),
            refresh_margin: 30,
            backchannel_path: "/auth/backchannel-logout".into(),
            revocation_ttl: Duration::from_secs(30 * 24 * 3600),
            logout_token_max_age: 300,
            refresh_timeout: Duration::from_secs(10),
            webhook_path: "/auth/webhook".into(),
            webhooks: Some(crate::webhook::Webhooks::new(
                crate::webhook::WebhookSecret::parse(FUZZ_WEBHOOK_SECRET).expect("fuzz secret"),
                Vec::new(),
            )),
            bearer: true,
            explain_refusals: false,
            origin: "https://app.example".into(),
            approve_param: None,
            client_ip: None,
            hooks: crate::hooks::Hooks::default(),
            session_claims: crate::config::DEFAULT_SESSION_CLAIMS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        };
        Arc::new(Shared {
            token: TokenClient {
                http,
                endpoint: meta.token_endpoint.clone(),
                client_id: FUZZ_CLIENT.into(),
                auth: crate::provider::TokenAuth::Secret {
                    secret: crate::Secret::new("fuzz"),
                    method: ClientAuthMethod::ClientSecretPost,
                },
                clock: Arc::new(crate::clock::SystemClock),
                par_endpoint: None,
            },
            settings,
            meta,
            verifier,
            trusted: Vec::new(),
            resource: None,
            cookies: Arc::new(CookieCodec::new(
                vec![cookie::Key::from(&[7u8; 64])],
                true,
                "oidc_fuzz",
                "/",
                "/auth",
            )),
            coordinator: Arc::new(crate::refresh::LocalRefreshCoordinator::with_clock(
                Duration::from_secs(60),
                64,
                clock.clone(),
            )),
            revocations: Arc::new(crate::MemoryRevocationStore::with_clock(clock.clone())),
            store: None,
            remember_stored: true,
            unsaved: quick_cache::sync::Cache::new(16),
            seen_jti: quick_cache::sync::Cache::new(64),
            sessions: crate::session_cache::SessionCache::new(64),
            clock,
            responses: Arc::new(crate::responses::DefaultResponses),
            custom_responses: false,
            silent_login: Default::default(),
        })
    })
}

/// Drives a route future that must finish without I/O: the fuzzing layer has nothing to wait
/// for, so a pending future means a route tried to reach the network.
pub(super) fn complete<T>(future: impl std::future::Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("a route of the fuzzing layer waited for I/O")
}

pub(super) fn signing_key() -> &'static jsonwebtoken::EncodingKey {
    static KEY: OnceLock<jsonwebtoken::EncodingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(FUZZ_SIGNING_KEY)
            .expect("valid base64");
        jsonwebtoken::EncodingKey::from_ec_der(&der)
    })
}

/// Fuzz target `backchannel`: the back-channel logout route. The first byte chooses:
/// - `0`: the second byte picks the `Content-Type` (or no body), the rest is the body;
/// - `1`: a form body;
/// - `2`: logout-token claims (JSON) straight into the claim checks;
/// - `3`: logout-token claims (JSON) signed with the fuzzing key, posted as
///   `logout_token=<JWT>`, so the whole route runs past the signature: claim checks, replay
///   check, revocation.
pub fn target_backchannel(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let shared = fuzz_shared();
    let form = || {
        Some(HeaderValue::from_static(
            "application/x-www-form-urlencoded",
        ))
    };
    match mode % 4 {
        0 => {
            let Some((&pick, body)) = rest.split_first() else {
                return;
            };
            const TYPES: [&[u8]; 6] = [
                b"application/x-www-form-urlencoded",
                b"Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                b"application/json",
                b"text/plain",
                b"application/x-www-form-urlencoded\xff",
                b"",
            ];
            let (content_type, body) = match TYPES.get(usize::from(pick) % (TYPES.len() + 2)) {
                Some(t) => (HeaderValue::from_bytes(t).ok(), Some(body)),
                None if pick % 2 == 0 => (None, Some(body)),
                None => (form(), None),
            };
            let body = body.map(Bytes::copy_from_slice);
            let _ = complete(crate::routes::backchannel_logout(
                shared.clone(),
                content_type,
                body,
            ));
        }
        1 => {
            let _ = complete(crate::routes::backchannel_logout(
                shared.clone(),
                form(),
                Some(Bytes::copy_from_slice(rest)),
            ));
        }
        2 => {
            if let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(rest) {
                let max_age = shared.settings.logout_token_max_age;
                let now = shared.clock.now();
                let _ = shared.verifier.check_logout_claims(&claims, max_age, now);
            }
        }
        _ => {
            let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(rest) else {
                return;
            };
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.kid = Some("fuzz-es256".into());
            header.typ = Some("logout+jwt".into());
            let Ok(token) = jsonwebtoken::encode(&header, &claims, signing_key()) else {
                return;
            };
            let body = format!("logout_token={token}");
            let page = complete(crate::routes::backchannel_logout(
                shared.clone(),
                form(),
                Some(Bytes::from(body)),
            ));
            // The signature is good: a refusal can only come from the claims.
            if page.status() == StatusCode::OK {
                let max_age = shared.settings.logout_token_max_age;
                assert!(shared
                    .verifier
                    .check_logout_claims(&claims, max_age, shared.clock.now())
                    .is_ok());
            }
        }
    }
}

/// Fuzz target `webhook`: the webhook route, headers and body. The first byte chooses:
/// - even: the rest is `webhook-id`, `webhook-timestamp` and `webhook-signature` values and the
///   body, separated by the first three newlines (missing parts leave headers out);
/// - odd: the rest is `webhook-id` and `webhook-timestamp` and the body, separated by the first
///   two newlines, and the signature is computed with the layer's secret, so the event parsing
///   is reached past the HMAC. A timestamp that is not a number means "now".
pub fn target_webhook(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let shared = fuzz_shared();
    if let Some(hooks) = &shared.settings.webhooks {
        hooks.forget_deliveries();
    }
    let mut headers = http::HeaderMap::new();
    if mode % 2 == 0 {
        let mut parts = rest.splitn(4, |b| *b == b'\n');
        let mut body: &[u8] = &[];
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature", ""] {
            let Some(part) = parts.next() else {
                break;
            };
            if name.is_empty() {
                body = part;
            } else if let Ok(value) = HeaderValue::from_bytes(part) {
                headers.insert(name, value);
            }
        }
        let _ = complete(crate::webhook::webhook(
            shared.webhook_context(),
            headers,
            Some(Bytes::copy_from_slice(body)),
        ));
    } else {
        let mut parts = rest.splitn(3, |b| *b == b'\n');
        let (Some(id), Some(ts), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let Ok(id) = std::str::from_utf8(id) else {
            return;
        };
        let now = shared.clock.now();
        let ts = std::str::from_utf8(ts)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(now);
        let Ok(signature) = crate::sign_webhook(FUZZ_WEBHOOK_SECRET, id, ts, body) else {
            return;
        };
        let Ok(id_value) = HeaderValue::from_str(id) else {
            return;
        };
        let readable = id_value.to_str().is_ok();
        headers.insert("webhook-id", id_value);
        headers.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&ts.to_string()).expect("a number is a header value"),
        );
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(&signature).expect("base64 is a header value"),
        );
        let page = complete(crate::webhook::webhook(
            shared.webhook_context(),
            headers,
            Some(Bytes::copy_from_slice(body)),
        ));
        // What `sign_webhook` signs, `verify_webhook_at` accepts.
        if readable && now.abs_diff(ts) <= crate::WEBHOOK_TOLERANCE_SECS.unsigned_abs() {
            assert_ne!(page.status(), StatusCode::UNAUTHORIZED);
        }
    }
}

pub(super) fn fuzz_any_jwks() -> &'static Jwks {
    static JWKS: OnceLock<Jwks> = OnceLock::new();
    JWKS.get_or_init(|| {
        use jsonwebtoken::Algorithm::*;
        Jwks::new(
            HttpClient::new(Duration::from_millis(100), 1024),
            "http://127.0.0.1:9/keys".into(),
            vec![
                RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
            ],
            Arc::new(crate::ManualClock::new(FUZZ_NOW)),
            i64::MAX,
        )
    })
}

pub(super) const FUZZ_STATUSES: [u16; 11] = [200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 503];

pub(super) fn fuzz_status(pick: u8) -> StatusCode {
    StatusCode::from_u16(FUZZ_STATUSES[usize::from(pick) % FUZZ_STATUSES.len()])
        .expect("valid status")
}

/// Fuzz target `provider_json`: what the provider sends. The first byte chooses (modulo 4):
/// - `0`: a discovery document, checked as for `Provider::discover` and `Provider::scalekit`
///   (with the fuzzing issuer and with the document's own), and the client authentication
///   method chosen from it;
/// - `1`: a JWKS document, parsed into keys as a fetch does, and keys looked up in it;
/// - `2`: a token endpoint answer: the second byte picks the HTTP status; success bodies go
///   through the token response checks and into the session expiry, error bodies through the
///   OAuth error parsing;
/// - `3`: a `Cache-Control` value of a JWKS response.
pub fn target_provider_json(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let url = "https://issuer.example/.well-known/openid-configuration";
            let Ok(meta) = crate::provider::json_answer::<ProviderMetadata>(url, rest) else {
                return;
            };
            let own = meta.issuer.clone();
            for provider in [
                crate::Provider::discover(FUZZ_ISSUER),
                crate::Provider::scalekit(FUZZ_ISSUER),
                crate::Provider::discover(own.clone()),
                crate::Provider::scalekit(own),
            ] {
                if let Ok(accepted) = provider.accept(meta.clone()) {
                    let _ = ClientAuthMethod::choose(&accepted, provider.is_scalekit());
                }
            }
        }
        1 => {
            use jsonwebtoken::Algorithm::*;
            let _ = fuzz_any_jwks().parse_for_fuzzing(
                rest,
                &[
                    (Some("k1"), RS256),
                    (Some("k1"), PS256),
                    (None, ES256),
                    (None, EdDSA),
                ],
            );
        }
        2 => {
            let Some((&pick, body)) = rest.split_first() else {
                return;
            };
            let answer = crate::provider::form_answer::<crate::provider::TokenResponse>(
                fuzz_status(pick),
                body,
            );
            match answer.and_then(crate::provider::TokenResponse::checked) {
                Ok(tokens) => {
                    let expires_in = tokens.expires_in();
                    let _ = crate::session::opaque_expiry(expires_in, None, FUZZ_NOW, 604_800);
                    let _ = crate::session::opaque_expiry(
                        expires_in,
                        Some(FUZZ_NOW),
                        FUZZ_NOW,
                        604_800,
                    );
                }
                Err(error) => {
                    let _ = (
                        error.to_string(),
                        error.is_transient(),
                        error.is_invalid_grant(),
                    );
                }
            }
        }
        _ => {
            if let Ok(value) = std::str::from_utf8(rest) {
                let _ = crate::provider::parse_max_age(value);
            }
        }
    }
}

/// Fuzz target `management_json`: Management API answers. The first byte picks the HTTP status,
/// the rest is the body, decoded as every call of the client decodes it: the 401 check, errors,
/// single objects (`user`, `organization`, `roles`, a session), pages of users, organizations
/// and sessions, and the token endpoint's answer with the token's cache lifetime.
#[cfg(feature = "management")]
pub fn target_management_json(data: &[u8]) {
    use crate::management::{
        api_answer, field, is_unauthenticated, page_items, token_answer, token_expiry,
        Organization, Role, User, UserSession,
    };
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status = fuzz_status(pick);
    let _ = is_unauthenticated(status, body);
    match api_answer::<Value>(status, body) {
        Ok(v) => {
            if let Ok(user) = field::<User>(v.clone(), "user") {
                for membership in &user.memberships {
                    let _ = membership.role_names();
                }
            }
            let _ = field::<Organization>(v.clone(), "organization");
            let _ = field::<Vec<Role>>(v.clone(), "roles");
            let _ = page_items::<User>(&v, "users");
            let _ = page_items::<Organization>(&v, "organizations");
            let _ = page_items::<UserSession>(&v, "sessions");
        }
        Err(error) => {
            let _ = (error.to_string(), error.status());
        }
    }
    let _ = api_answer::<UserSession>(status, body);
    if let Ok((_, expires_in)) = token_answer(status, body) {
        static BASE: OnceLock<tokio::time::Instant> = OnceLock::new();
        let _ = token_expiry(*BASE.get_or_init(tokio::time::Instant::now), expires_in);
    }
}
