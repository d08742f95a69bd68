//! `private_key_jwt` client authentication: verifying client assertions (RFC 7523 sections 2.2
//! and 3, OpenID Connect Core 1.0 section 9).

use std::sync::atomic::Ordering;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::Params;
use crate::provider::JWT_BEARER_ASSERTION_TYPE;
use crate::testing::State;

/// The longest an assertion may live from now: RFC 7523 section 3 lets the server limit it.
const MAX_AHEAD: i64 = 300;

/// The client a `client_assertion` authenticates, or why it is refused.
pub(super) fn verify(s: &State, p: &Params) -> Result<String, &'static str> {
    if !s.auth_methods.iter().any(|m| m == "private_key_jwt") {
        return Err("private_key_jwt not accepted");
    }
    if p.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER_ASSERTION_TYPE) {
        return Err("unsupported client_assertion_type");
    }
    let assertion = p
        .get("client_assertion")
        .filter(|a| !a.is_empty())
        .ok_or("no client_assertion")?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| "malformed assertion")?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err("assertion algorithm not accepted");
    }
    // Who it claims to be, before the signature tells whether it is.
    let claimed = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(assertion)
        .map_err(|_| "malformed assertion")?
        .claims;
    let client = claimed
        .get("iss")
        .and_then(Value::as_str)
        .ok_or("assertion without iss")?
        .to_owned();
    // OIDC Core 9: `client_id` in the form, when present, names the same client.
    if p.get("client_id").is_some_and(|id| *id != client) {
        return Err("client_id does not match the assertion");
    }
    let jwks = s
        .clients
        .lock()
        .expect("clients lock")
        .get(&client)
        .map(|c| c.jwks.clone())
        .ok_or("unknown client")?;
    if jwks.is_empty() {
        return Err("the client has no registered key");
    }
    let base = &s.base;
    // RFC 7523 3, item 3; RFC 9126 section 2: the issuer, the token endpoint or the PAR
    // endpoint identify this server.
    let audiences = [
        s.issuer.clone(),
        format!("{base}/oauth/token"),
        format!("{base}/oauth/par"),
    ];
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&audiences);
    validation.set_issuer(&[&client]);
    validation.sub = Some(client.clone());
    validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
    // Times against the provider's clock (below), not the system's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let verified = jwks
        .iter()
        .filter(|jwk| {
            header.kid.is_none() || jwk.get("kid").and_then(Value::as_str) == header.kid.as_deref()
        })
        .filter_map(|jwk| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone()).ok())
        .filter_map(|jwk| DecodingKey::from_jwk(&jwk).ok())
        .find_map(|key| {
            jsonwebtoken::decode::<Map<String, Value>>(assertion, &key, &validation).ok()
        })
        .ok_or("assertion signature, iss, sub or aud refused")?
        .claims;
    let now = s.clock.now();
    let exp = verified
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("assertion exp not a number")?;
    if exp <= now {
        return Err("assertion expired");
    }
    if exp > now.saturating_add(MAX_AHEAD) {
        return Err("assertion expires too far in the future");
    }
    if verified
        .get("iat")
        .and_then(Value::as_i64)
        .is_some_and(|iat| iat > now.saturating_add(60))
    {
        return Err("assertion issued in the future");
    }
    let jti = verified
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or("assertion without jti")?;
    // RFC 7523 section 3, item 7: a `jti` is used once; remembered until the assertion expires.
    {
        let mut seen = s.seen_jtis.lock().expect("jti lock");
        seen.retain(|_, until| *until > now);
        if seen.contains_key(jti) {
            return Err("assertion jti reused");
        }
        seen.insert(jti.to_owned(), exp);
    }
    s.client_assertions.fetch_add(1, Ordering::Relaxed);
    Ok(client)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::provider::Assertions;
    use crate::testing::TestProvider;
    use crate::{Algorithm as Alg, ClientKey};

    struct Rig {
        provider: TestProvider,
        clock: ManualClock,
        assertions: Assertions,
        key: ClientKey,
    }

    async fn rig() -> Rig {
        let key = ClientKey::from_pem(crate::testing::client_key_pem(Alg::ES256)).unwrap();
        let clock = ManualClock::starting_now();
        let provider = TestProvider::builder()
            .client_jwk(key.public_jwk(Some("k1")))
            .clock(clock.clone())
            .start()
            .await;
        let assertions = Assertions::new(
            &key,
            Alg::ES256,
            None,
            provider.client_id().into(),
            provider.token_endpoint(),
        )
        .unwrap();
        Rig {
            provider,
            clock,
            assertions,
            key,
        }
    }

    fn form(assertion: &str) -> Params {
        HashMap::from([
            (
                "client_assertion_type".to_owned(),
                JWT_BEARER_ASSERTION_TYPE.to_owned(),
            ),
            ("client_assertion".to_owned(), assertion.to_owned()),
        ])
    }

    #[tokio::test]
    async fn a_jti_is_accepted_once() {
        let r = rig().await;
        let a = r.assertions.sign(r.clock.now()).unwrap();
        let s = &r.provider.state;
        assert_eq!(verify(s, &form(&a)).as_deref(), Ok("test-client"));
        assert_eq!(verify(s, &form(&a)), Err("assertion jti reused"));
        // A fresh assertion (another jti) is accepted.
        let b = r.assertions.sign(r.clock.now()).unwrap();
        assert!(verify(s, &form(&b)).is_ok());
    }

    #[tokio::test]
    async fn expiry_audience_and_client_id_are_checked() {
        let r = rig().await;
        let s = &r.provider.state;
        let old = r.assertions.sign(r.clock.now()).unwrap();
        r.clock.advance(Duration::from_secs(61));
        assert_eq!(verify(s, &form(&old)), Err("assertion expired"));
        let far = r.assertions.sign(r.clock.now() + 3600).unwrap();
        assert_eq!(
            verify(s, &form(&far)),
            Err("assertion expires too far in the future")
        );
        // RFC 7523 3, item 3: an audience that is not this server.
        let key = ClientKey::from_pem(crate::testing::client_key_pem(Alg::ES256)).unwrap();
        let elsewhere = |key: &ClientKey, aud: &str| {
            Assertions::new(key, Alg::ES256, None, "test-client".into(), aud.into())
                .unwrap()
                .sign(r.clock.now())
                .unwrap()
        };
        assert_eq!(
            verify(s, &form(&elsewhere(&r.key, "https://other.example/token"))),
            Err("assertion signature, iss, sub or aud refused"),
            "another audience"
        );
        assert_eq!(
            verify(s, &form(&elsewhere(&key, &r.provider.token_endpoint()))),
            Err("assertion signature, iss, sub or aud refused"),
            "a key the client did not register"
        );
        let mut mismatched = form(&r.assertions.sign(r.clock.now()).unwrap());
        mismatched.insert("client_id".into(), "another".into());
        assert_eq!(
            verify(s, &mismatched),
            Err("client_id does not match the assertion")
        );
    }
}
