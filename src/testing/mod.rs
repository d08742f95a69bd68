//! An in-process OpenID provider for tests, demos and your own test suites (feature `testing`).
//!
//! [`TestProvider`] listens on `127.0.0.1` on a free port and serves discovery, authorize (auto
//! approval or a small login form), token (code and refresh, with optional rotation), keys and
//! end-session, laid out like Scalekit (`/oauth/authorize`, `/oauth/token`, `/keys`,
//! `/oidc/logout`). Tokens are RS256 JWTs. Knobs let tests change TTLs, rotate keys, make the
//! token endpoint fail or stall, and count the grants served.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//! let provider = TestProvider::builder()
//!     .user(TestUser::new("usr_1").email("ada@example.com"))
//!     .start()
//!     .await;
//! let auth = provider.layer_builder("http://127.0.0.1:3000/auth/callback").build().await.unwrap();
//! // A signed-in Cookie header, without the login dance:
//! let cookie = provider.session_cookie(&auth, &TestUser::new("usr_2"));
//! assert!(cookie.contains('='));
//! # }
//! ```

mod builder;
mod faults;
mod provider;
mod server;
mod state;
mod tokens;
mod user;

pub use builder::TestProviderBuilder;
pub use faults::{AccessTokenDefect, Counts, Failure, IdTokenDefect};
pub use provider::TestProvider;
pub(crate) use state::{Authn, CodeGrant, Pushed, RefreshGrant, SsoSession, State, SSO_COOKIE};
pub use user::{IdpInitiatedLogin, TestUser};

use crate::clock::{Clock, SharedClock};

/// A fixed cookie key for tests, the same for the same `seed`: 64 bytes derived from it with
/// SHA-256, so it passes the layer's check for made-up keys. Never use one outside tests:
/// anyone who reads this function can open the cookies.
///
/// ```
/// let key = tower_oidc_auth::testing::cookie_key(1);
/// assert_eq!(key, tower_oidc_auth::testing::cookie_key(1));
/// assert_ne!(key, tower_oidc_auth::testing::cookie_key(2));
/// ```
#[must_use]
pub fn cookie_key(seed: u8) -> [u8; 64] {
    use sha2::{Digest, Sha256};
    let mut key = [0u8; 64];
    for (half, chunk) in key.chunks_mut(32).enumerate() {
        let digest = Sha256::new()
            .chain_update(b"tower-oidc-auth test cookie key")
            .chain_update([seed, half as u8])
            .finalize();
        chunk.copy_from_slice(&digest);
    }
    key
}

/// A new private key in PKCS#8 PEM, for `private_key_jwt` in tests: RSA 2048 for
/// [`Algorithm::RS256`](crate::Algorithm::RS256), P-256 for anything else. Read it with
/// [`ClientKey::from_pem`](crate::ClientKey::from_pem); register its
/// [`public_jwk`](crate::ClientKey::public_jwk) with
/// [`TestProviderBuilder::client_jwk`].
///
/// # Panics
/// If the system cannot make a key.
#[must_use]
pub fn client_key_pem(alg: crate::Algorithm) -> String {
    use aws_lc_rs::encoding::AsDer;
    let der = match alg {
        crate::Algorithm::RS256 => {
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .expect("RSA key generation")
                .as_ref()
                .to_vec()
        }
        _ => aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("P-256 key generation")
        .as_ref()
        .to_vec(),
    };
    pem::encode(&pem::Pem::new("PRIVATE KEY", der))
}

/// Lets the layer share the provider's clock.
struct ClockRef(SharedClock);

impl Clock for ClockRef {
    fn now(&self) -> i64 {
        self.0.now()
    }
}
