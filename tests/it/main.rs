//! The integration tests, in one binary (`cargo test --test it`): one module per former test
//! file, and the helpers they share in [`helpers`].
//!
//! Three suites stay binaries of their own: `tests/soak.rs` (long; counts live heap bytes over
//! every thread), `tests/redis.rs` (needs a Redis server, `REDIS_URL`) and `tests/no_leaks.rs`
//! (installs a global tracing subscriber). They share [`helpers`] through `#[path]`.

mod alloc;
mod explain;
mod helpers;

/// Where the sessions of the suites that run in both modes live, here: in cookies.
const SESSIONS: helpers::Sessions = helpers::Sessions::Cookies;

mod in_store;

mod adversarial;
mod after_login;
mod attack_after_login;
mod attack_cookie_bytes;
mod attack_fixes;
mod attack_memo;
mod attack_mends20;
mod attack_mends4;
mod attack_mends5;
mod attack_newcomer;
mod attack_newcomer_mends;
mod attack_observability;
mod attack_observability2;
mod attack_par_pkjwt;
mod attack_reach;
mod attack_recent_cookies;
mod attack_restructure;
mod attack_scalekit;
mod attack_session_cache;
mod attack_sessions;
mod attack_store;
mod attack_store2;
mod attack_store3;
mod attack_store4;
mod attack_store5;
mod attack_webhook;
mod backchannel;
mod claims_rejection;
mod flow;
mod fuzz_corpus;
mod grpc;
mod lifetime;
#[cfg(feature = "management")]
mod management;
mod mcp_example;
mod multi_app;
mod newcomer;
mod pages;
mod par;
mod private_key_jwt;
mod properties;
mod provider_prompt;
mod quickstart;
mod refresh;
mod refresh_robust;
mod resource_server;
mod responses_hook;
mod revocation;
mod scalekit;
mod signature_memo;
mod silent;
mod step_up;
mod store_mode;
mod store_rig;
mod trusted_issuers;
