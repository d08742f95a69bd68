//! Time, injectable so tests can move it without sleeping.
//!
//! The layer reads the time only through a [`Clock`]: [`SystemClock`] by default, a
//! [`ManualClock`] in tests, moved by hand, never by sleeping.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc_auth::clock::{Clock, ManualClock};
//! use tower_oidc_auth::testing::{TestProvider, TestUser};
//!
//! let clock = ManualClock::starting_now();
//! let provider = TestProvider::start().await;
//! let auth = provider
//!     .layer_builder("http://127.0.0.1:3000/auth/callback")
//!     .session_max_age(Duration::from_secs(3600))
//!     .clock(clock.clone()) // clones share one time
//!     .build()
//!     .await
//!     .unwrap();
//! let app = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .route_layer(auth.require())
//!     .layer(auth.clone());
//! let cookie = provider.session_cookie(&auth, &TestUser::new("usr_1"));
//! let me = |cookie: &str| {
//!     Request::get("/me").header(header::COOKIE, cookie).body(Body::empty()).unwrap()
//! };
//! assert_eq!(app.clone().oneshot(me(&cookie)).await.unwrap().status(), StatusCode::OK);
//!
//! // Two hours later the session is past its lifetime.
//! let before = clock.now();
//! clock.advance(Duration::from_secs(2 * 3600));
//! assert_eq!(clock.now(), before + 7200);
//! assert_eq!(app.oneshot(me(&cookie)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in whole seconds since the Unix epoch.
///
/// The layer reads time only through this trait: token expiry, the JWKS refetch rate limit and
/// transaction-cookie ages. Tests swap in a [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
///
/// ```
/// use tower_oidc_auth::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(std::time::Duration::from_secs(5));
/// assert_eq!(clock.now(), 1_005);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock at `secs` seconds since the Unix epoch.
    #[must_use]
    pub fn new(secs: i64) -> Self {
        Self(Arc::new(AtomicI64::new(secs)))
    }

    /// A clock at the current system time.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, secs: i64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

/// A shared clock handle.
pub(crate) type SharedClock = Arc<dyn Clock>;
