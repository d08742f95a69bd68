//! The routes the layer serves itself: login, callback, logout.

mod backchannel;
mod callback;
mod login;
mod login_hook;
mod login_options;
mod logout;
mod loopback_move;

pub(crate) use backchannel::{backchannel_logout, MAX_BODY as BACKCHANNEL_MAX_BODY};
pub(crate) use callback::callback;
pub(crate) use login::login;
pub use login_options::LoginOptions;
pub(crate) use login_options::StepUp;
pub(crate) use logout::logout;

use serde::{Deserialize, Serialize};

use crate::cookies::RequestCookies;
use crate::state::Shared;

/// A login attempt in flight, sealed in its own cookie on the callback path.
#[derive(Serialize, Deserialize)]
pub(crate) struct Transaction {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    pub(crate) return_to: String,
    pub(crate) created: i64,
    /// The `max_age` (seconds) this login asked for: the callback requires an `auth_time` no
    /// older. Absent in attempts started by versions without step-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_age: Option<u64>,
    /// The `acr_values` this login asked for: the callback requires an `acr` among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) acr_values: Option<String>,
    /// Asked with `prompt=none` (a silent login): a provider answer that needs the user sends
    /// the browser back to `return_to` anonymously instead of to an error page.
    #[serde(default)]
    pub(crate) silent: bool,
}

/// The login attempts in flight, oldest first: `(id, created)`. Sealed, on the common path of
/// login and callback, so login can drop the oldest when there are too many.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct TxIndex(pub(crate) Vec<(String, i64)>);

/// Length of the state prefix that names a transaction cookie.
pub(crate) const TX_ID_LEN: usize = 16;

pub(crate) fn read_index(shared: &Shared, cookies: &RequestCookies<'_>) -> TxIndex {
    let now = shared.clock.now();
    let ttl = shared.settings.login_timeout;
    match shared
        .cookies
        .read_json::<TxIndex>(cookies, &shared.cookies.tx_index.name)
    {
        Some(Ok(mut index)) => {
            index.0.retain(|(id, created)| {
                id.len() == TX_ID_LEN && now.saturating_sub(*created) < ttl
            });
            index
        }
        _ => TxIndex::default(),
    }
}

/// Query parameters, refusing duplicates (RFC 6749 section 3.1) and oversized input.
pub(crate) fn query_params(query: Option<&str>) -> Result<Vec<(String, String)>, &'static str> {
    let query = query.unwrap_or("");
    if query.len() > 8 * 1024 {
        return Err("query string too long");
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if out.iter().any(|(name, _)| *name == k) {
            return Err("repeated parameter");
        }
        if out.len() >= 32 {
            return Err("too many parameters");
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Which call to the provider failed during a sign-in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignInCall {
    /// The code exchange at the callback.
    CodeExchange,
    /// The pushed authorization request at the login route (RFC 9126).
    PushedRequest,
}

/// How a failed provider call during a sign-in is answered: the status, the page's reason and
/// its message. Credentials refused: 502, logged as an error with what to check. Timeout: 504.
/// Another refusal (4xx) of a code exchange: 400, the code may have expired or been used; of a
/// pushed request it is this app's request that is wrong: 502. Anything else: 502.
pub(crate) fn provider_failure(
    error: &crate::provider::ProviderError,
    call: SignInCall,
) -> (
    http::StatusCode,
    crate::responses::ErrorReason,
    &'static str,
) {
    use crate::provider::ProviderError;
    use crate::responses::ErrorReason;
    use http::StatusCode;
    match error {
        ProviderError::OAuth { error: code, .. }
            if code == "invalid_client" || code == "unauthorized_client" =>
        {
            tracing::error!(
                error = %code,
                "the identity provider refused this app's credentials: check the client \
                 id and secret (SCALEKIT_CLIENT_ID and SCALEKIT_CLIENT_SECRET, or \
                 OIDC_CLIENT_ID and OIDC_CLIENT_SECRET; `.client_id()`, \
                 `.client_secret()`), or the private key and its registration \
                 (`.client_auth()`, AUTH_CLIENT_KEY), and that the client may use the \
                 authorization code grant"
            );
            (
                StatusCode::BAD_GATEWAY,
                ErrorReason::ClientRejected,
                "The identity provider refused this app's credentials; details are in \
                 the server log.",
            )
        }
        ProviderError::Timeout(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            ErrorReason::ExchangeTimeout,
            "The identity provider did not answer in time.",
        ),
        ProviderError::OAuth { status, .. }
            if *status < 500 && call == SignInCall::CodeExchange =>
        {
            (
                StatusCode::BAD_REQUEST,
                ErrorReason::ExchangeRefused,
                "The identity provider refused this sign-in. It may have expired or been used already.",
            )
        }
        _ => (
            StatusCode::BAD_GATEWAY,
            ErrorReason::ExchangeFailed,
            match call {
                SignInCall::CodeExchange => {
                    "The identity provider could not complete the sign-in."
                }
                SignInCall::PushedRequest => "The identity provider could not start the sign-in.",
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_refuses_repeats_and_floods() {
        assert_eq!(
            query_params(Some("a=1&b=%20x")).unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), " x".into())]
        );
        assert!(query_params(Some("state=a&state=b")).is_err());
        assert!(query_params(Some(&"x".repeat(9000))).is_err());
        let many: Vec<String> = (0..40).map(|i| format!("p{i}=1")).collect();
        assert!(query_params(Some(&many.join("&"))).is_err());
        assert!(query_params(None).unwrap().is_empty());
        assert!(query_params(Some("%zz=%ff&&=")).is_ok());
    }

    #[test]
    fn transactions_without_step_up_still_parse() {
        let old = r#"{"state":"s","nonce":"n","verifier":"v","return_to":"/","created":1}"#;
        let tx: Transaction = serde_json::from_str(old).unwrap();
        assert_eq!((tx.max_age, tx.acr_values.as_deref()), (None, None));
        let new = serde_json::to_string(&tx).unwrap();
        assert!(
            !new.contains("max_age") && !new.contains("acr_values"),
            "{new}"
        );
    }
}
