//! The flow, refresh, back-channel and multi-app suites again, with sessions in a store: the
//! same files as `crate::flow` and the others, each reading its `super::SESSIONS`.

const SESSIONS: crate::helpers::Sessions = crate::helpers::Sessions::Store;

#[path = "backchannel.rs"]
mod backchannel;
#[path = "flow.rs"]
mod flow;
#[path = "multi_app.rs"]
mod multi_app;
#[path = "refresh.rs"]
mod refresh;
