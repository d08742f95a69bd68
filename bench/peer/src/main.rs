//! The peer server `bench/load.sh` loads (mode `peer`): the same handler as
//! `examples/load_server.rs` behind [jwt-authorizer](https://crates.io/crates/jwt-authorizer),
//! which validates an `Authorization: Bearer` access token (RS256 signature against the JWKS
//! URL, `iss`, `aud`, `exp`) on every request.
//!
//! ```text
//! cargo run --release --manifest-path bench/peer/Cargo.toml -- PORT
//! ```
//!
//! The JWKS and the tokens come from this crate's in-process test provider
//! (`tower_oidc_auth::testing`), so the keys, issuer and audience are those of a real provider's
//! documents. With `TOKENS_FILE=path` (and `SESSIONS=N`, default 1) it mints N distinct access
//! tokens (users `usr_0` .. `usr_{N-1}`) and writes their `Authorization` header values, one a
//! line, before `READY`; `bench/many.lua` cycles through them. Single-threaded runtime, so the
//! load script can pin it to one core.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use jsonwebtoken::Algorithm;
use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims, RegisteredClaims, Validation};
use tower_oidc_auth::testing::{TestProvider, TestUser};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3900);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // Tokens live an hour: minting 30,000 and a long run stay well inside it.
        let provider = TestProvider::builder()
            .access_token_ttl(Duration::from_secs(3600))
            .start()
            .await;
        // The `jwks_uri` of the provider's discovery document (src/testing/server.rs).
        let jwks_uri = format!("{}/keys", provider.issuer().trim_end_matches('/'));
        // As a real deployment: the provider's JWKS URL, its issuer, our client id as audience,
        // RS256 only, exp checked (the default), nbf checked.
        let validation = Validation::new()
            .iss(&[provider.issuer()])
            .aud(&[provider.client_id()])
            .algs(vec![Algorithm::RS256])
            .nbf(true);
        let auth = JwtAuthorizer::<RegisteredClaims>::from_jwks_url(&jwks_uri)
            .validation(validation)
            .build()
            .await?;
        let sessions: usize = std::env::var("SESSIONS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if let Ok(path) = std::env::var("TOKENS_FILE") {
            let mut out = String::new();
            for i in 0..sessions {
                let user = TestUser::new(format!("usr_{i}")).email(format!("u{i}@example.com"));
                out.push_str("Bearer ");
                out.push_str(&provider.access_token(&user));
                out.push('\n');
            }
            std::fs::write(&path, out)?;
            println!("TOKENS_FILE {path}");
        }
        let app = Router::new()
            .route(
                "/",
                get(|JwtClaims(c): JwtClaims<RegisteredClaims>| async move {
                    format!("hello {}", c.sub.unwrap_or_default())
                }),
            )
            .layer(auth.into_layer());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("READY");
        axum::serve(listener, app).await?;
        drop(provider);
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
