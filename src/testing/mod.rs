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
pub(crate) use state::{Authn, CodeGrant, RefreshGrant, SsoSession, State, SSO_COOKIE};
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

/// Lets the layer share the provider's clock.
struct ClockRef(SharedClock);

impl Clock for ClockRef {
    fn now(&self) -> i64 {
        self.0.now()
    }
}
