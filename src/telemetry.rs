//! What the layer tells operators: metrics through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`, on by default), a no-op until the app installs a recorder.
//!
//! Every name and label is listed in the README's "Operating it" table. Labels are closed sets
//! of `&'static str` chosen here, never values from a request or a token: no user id, no path
//! beyond the layer's own routes. Nothing is recorded on the signed-in hot path (a session or a
//! bearer token served from the caches): only sign-ins, refreshes, refusals, provider calls,
//! key refetches, logouts and webhooks, which all do far costlier work beside.

// Without the feature the names are documentation only.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::time::Duration;

/// `oidc_logins_total{outcome}`.
pub(crate) const LOGINS: &str = "oidc_logins_total";
/// `oidc_refresh_total{outcome, coordinated}`.
pub(crate) const REFRESHES: &str = "oidc_refresh_total";
/// `oidc_provider_request_seconds{endpoint}` (histogram).
pub(crate) const PROVIDER_REQUEST: &str = "oidc_provider_request_seconds";
/// `oidc_jwks_refetch_total{reason}`.
pub(crate) const JWKS_REFETCHES: &str = "oidc_jwks_refetch_total";
/// `oidc_rejections_total{reason}`.
pub(crate) const REJECTIONS: &str = "oidc_rejections_total";
/// `oidc_backchannel_logout_total{outcome}`.
pub(crate) const BACKCHANNEL: &str = "oidc_backchannel_logout_total";
/// `oidc_webhook_total{type, outcome}`.
pub(crate) const WEBHOOKS: &str = "oidc_webhook_total";
/// `oidc_cache_entries{cache}` (gauge).
pub(crate) const CACHE_ENTRIES: &str = "oidc_cache_entries";
/// `oidc_revocations` (gauge): revocation records held, where the store can tell.
pub(crate) const REVOCATIONS: &str = "oidc_revocations";

/// How a sign-in (a callback) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Login {
    /// Signed in.
    Success,
    /// The provider reported an error, failed, or did not answer.
    ProviderError,
    /// The app's login hook refused the user.
    Denied,
    /// The callback or the tokens were refused (forged, replayed, expired, mismatched).
    Invalid,
    /// The app's side failed: its login hook, or its session store.
    Error,
}

impl Login {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ProviderError => "provider_error",
            Self::Denied => "denied",
            Self::Invalid => "invalid",
            Self::Error => "error",
        }
    }
}

/// Which provider endpoint a call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// The JWKS.
    Jwks,
    /// The token endpoint (code exchange, refresh, client credentials).
    Token,
    /// RFC 7009 revocation.
    Revocation,
    /// RFC 9126 pushed authorization requests.
    Par,
}

impl Endpoint {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Discovery => "discovery",
            Self::Jwks => "jwks",
            Self::Token => "token",
            Self::Revocation => "revocation",
            Self::Par => "par",
        }
    }
}

#[cfg(feature = "metrics")]
mod imp {
    use super::*;

    pub(crate) fn login(outcome: Login) {
        metrics::counter!(LOGINS, "outcome" => outcome.label()).increment(1);
    }

    pub(crate) fn refresh(outcome: &'static str, coordinated: bool) {
        let coordinated = if coordinated { "true" } else { "false" };
        metrics::counter!(REFRESHES, "outcome" => outcome, "coordinated" => coordinated)
            .increment(1);
    }

    pub(crate) fn provider_request(endpoint: Endpoint, took: Duration) {
        metrics::histogram!(PROVIDER_REQUEST, "endpoint" => endpoint.label())
            .record(took.as_secs_f64());
    }

    pub(crate) fn jwks_refetch(reason: &'static str) {
        metrics::counter!(JWKS_REFETCHES, "reason" => reason).increment(1);
    }

    pub(crate) fn rejection(reason: &'static str) {
        metrics::counter!(REJECTIONS, "reason" => reason).increment(1);
    }

    pub(crate) fn backchannel(outcome: &'static str) {
        metrics::counter!(BACKCHANNEL, "outcome" => outcome).increment(1);
    }

    pub(crate) fn webhook(kind: &'static str, outcome: &'static str) {
        metrics::counter!(WEBHOOKS, "type" => kind, "outcome" => outcome).increment(1);
    }

    pub(crate) fn cache_entries(cache: &'static str, entries: usize) {
        metrics::gauge!(CACHE_ENTRIES, "cache" => cache).set(entries as f64);
    }

    pub(crate) fn revocations(records: usize) {
        metrics::gauge!(REVOCATIONS).set(records as f64);
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use super::*;

    pub(crate) fn login(_: Login) {}
    pub(crate) fn refresh(_: &'static str, _: bool) {}
    pub(crate) fn provider_request(_: Endpoint, _: Duration) {}
    pub(crate) fn jwks_refetch(_: &'static str) {}
    pub(crate) fn rejection(_: &'static str) {}
    pub(crate) fn backchannel(_: &'static str) {}
    pub(crate) fn webhook(_: &'static str, _: &'static str) {}
    pub(crate) fn cache_entries(_: &'static str, _: usize) {}
    pub(crate) fn revocations(_: usize) {}
}

pub(crate) use imp::*;
