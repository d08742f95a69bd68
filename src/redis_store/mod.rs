//! Refresh coordination, revocations and server-side sessions across instances through Redis
//! (feature `redis`).

mod refresh;
mod revocation;
mod sessions;

pub use refresh::RedisRefreshCoordinator;
pub use revocation::RedisRevocationStore;
pub use sessions::RedisSessionStore;
