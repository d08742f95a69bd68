//! Step-up: what a login asked for (`max_age`, `acr_values`), and whether claims meet it. The
//! callback checks a new sign-in against the request stored in its transaction (OpenID Connect
//! Core 3.1.2.1 and 2: `auth_time` is required when `max_age` was asked), and the
//! [`require_recent_login`](crate::AuthLayer::require_recent_login) and
//! [`require_acr`](crate::AuthLayer::require_acr) guards check each request's claims the same
//! way, so a sign-in the callback accepts also passes the guard that asked for it.

use serde_json::{Map, Value};

/// Whether a sign-in at `auth_time` (a claim value) is no older than `max_age` seconds, with
/// `leeway` seconds of slack, at `now`. A missing or malformed `auth_time` is not recent, nor
/// one in the future beyond the leeway: a sign-in cannot have happened later than now, and such
/// a claim would otherwise stay recent for ever.
pub(crate) fn is_recent(auth_time: Option<&Value>, max_age: u64, leeway: i64, now: i64) -> bool {
    let Some(at) = auth_time.and_then(|v| crate::verify::numeric_date(v).ok()) else {
        return false;
    };
    if at > now.saturating_add(leeway) {
        return false;
    }
    let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
    now.saturating_sub(at) <= max_age.saturating_add(leeway)
}

/// Whether `acr` (a claim value) is one of the space-separated `acr_values`.
pub(crate) fn acr_accepted(acr: Option<&Value>, acr_values: &str) -> bool {
    acr.and_then(Value::as_str)
        .is_some_and(|acr| acr_values.split_ascii_whitespace().any(|v| v == acr))
}

/// Why a new sign-in's ID token claims do not meet the step-up its login asked for, if they do
/// not.
pub(crate) fn unmet(
    max_age: Option<u64>,
    acr_values: Option<&str>,
    id_claims: &Map<String, Value>,
    leeway: i64,
    now: i64,
) -> Option<&'static str> {
    if let Some(max_age) = max_age {
        match id_claims.get("auth_time") {
            None => return Some("auth_time missing, and max_age was requested"),
            at @ Some(_) if !is_recent(at, max_age, leeway, now) => {
                return Some(
                    "auth_time older than the requested max_age, in the future, or malformed",
                )
            }
            Some(_) => {}
        }
    }
    if let Some(values) = acr_values {
        if !acr_accepted(id_claims.get("acr"), values) {
            return Some("acr missing or not among the requested acr_values");
        }
    }
    None
}

/// A quoted-string (RFC 9110 section 5.6.4): `"` and `\` escaped.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// RFC 9470 section 3: the challenge of a request whose authentication is not recent enough or
/// not strong enough.
pub(crate) fn challenge(max_age: Option<u64>, acr_values: Option<&str>) -> String {
    let mut out =
        String::from("Bearer error=\"insufficient_user_authentication\", error_description=");
    out.push_str(&quoted(match (max_age, acr_values) {
        (Some(_), None) => "A more recent authentication is required",
        (None, Some(_)) => "A stronger authentication is required",
        _ => "A more recent or stronger authentication is required",
    }));
    if let Some(max_age) = max_age {
        out.push_str(&format!(", max_age={max_age}"));
    }
    if let Some(values) = acr_values {
        out.push_str(", acr_values=");
        out.push_str(&quoted(values));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn recent_means_within_max_age_and_leeway() {
        let now = 10_000;
        assert!(is_recent(Some(&json!(now - 300)), 300, 0, now));
        assert!(!is_recent(Some(&json!(now - 301)), 300, 0, now));
        assert!(is_recent(Some(&json!(now - 330)), 300, 30, now));
        assert!(!is_recent(Some(&json!(now - 331)), 300, 30, now));
        assert!(is_recent(Some(&json!(now as f64 - 10.5)), 300, 0, now));
        assert!(!is_recent(None, 300, 0, now));
        assert!(!is_recent(Some(&json!("9999")), 300, 0, now));
        assert!(!is_recent(Some(&json!(null)), 300, 0, now));
        assert!(is_recent(Some(&json!(i64::MIN)), u64::MAX, i64::MAX, now));
    }

    #[test]
    fn acr_must_be_one_of_the_values() {
        assert!(acr_accepted(Some(&json!("mfa")), "pwd  mfa"));
        assert!(!acr_accepted(Some(&json!("mf")), "mfa"));
        assert!(!acr_accepted(Some(&json!(["mfa"])), "mfa"));
        assert!(!acr_accepted(None, "mfa"));
        assert!(!acr_accepted(Some(&json!("")), ""));
    }

    #[test]
    fn unmet_requires_auth_time_when_max_age_was_asked() {
        let now = 1_000;
        let fresh = claims(json!({"auth_time": now - 5, "acr": "mfa"}));
        assert_eq!(unmet(Some(60), Some("mfa"), &fresh, 0, now), None);
        assert_eq!(unmet(None, None, &claims(json!({})), 0, now), None);
        assert!(unmet(Some(60), None, &claims(json!({})), 0, now).is_some());
        assert!(unmet(Some(60), None, &claims(json!({"auth_time": 0})), 0, now).is_some());
        assert!(unmet(None, Some("hwk"), &fresh, 0, now).is_some());
    }

    #[test]
    fn challenge_follows_rfc_9470() {
        assert_eq!(
            challenge(Some(300), None),
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"A more recent authentication is required\", max_age=300"
        );
        assert_eq!(
            challenge(None, Some("a \"b\\")),
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"A stronger authentication is required\", \
             acr_values=\"a \\\"b\\\\\""
        );
    }
}
