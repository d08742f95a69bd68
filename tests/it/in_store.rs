//! The flow, refresh, back-channel and multi-app suites again, with sessions in a store: the
//! same files as `crate::flow` and the others, each reading its `super::SESSIONS`.

// Loading each file a second time is the point: the same tests, another mode.
#![allow(clippy::duplicate_mod)]

const SESSIONS: crate::helpers::Sessions = crate::helpers::Sessions::Store;

#[path = "backchannel.rs"]
mod backchannel;
#[path = "flow.rs"]
mod flow;
#[path = "multi_app.rs"]
mod multi_app;
#[path = "refresh.rs"]
mod refresh;
