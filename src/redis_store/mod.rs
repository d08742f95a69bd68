//! Refresh coordination and revocations across instances through Redis (feature `redis`).

mod refresh;
mod revocation;

pub use refresh::RedisRefreshCoordinator;
pub use revocation::RedisRevocationStore;
