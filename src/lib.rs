//! OpenID Connect login for tower services.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod claims;
mod clock;
mod config;
mod cookies;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod layer;
mod provider;
mod require;
mod responses;
mod return_to;
mod routes;
mod secret;
mod service;
mod session;
mod verify;

#[cfg(feature = "testing")]
pub mod testing;

pub use body::AuthBody;
pub use claims::{Claims, StandardClaims};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AuthConfig, ConfigError};
#[cfg(feature = "axum")]
pub use extract::ClaimsRejection;
pub use future::ResponseFuture;
pub use jsonwebtoken::Algorithm;
pub use layer::AuthLayer;
pub use provider::{ClientAuthMethod, Provider, ProviderError, ProviderMetadata};
pub use require::{RequireAuth, RequireAuthLayer, RequireFuture};
pub use secret::Secret;
pub use service::AuthService;
