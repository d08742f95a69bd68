use super::*;

fn jwk(v: serde_json::Value) -> Jwk {
    serde_json::from_value(v).unwrap()
}

const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

#[test]
fn rsa_key_gets_rsa_algorithms_within_allow_list() {
    let k = jwk(serde_json::json!({"kty":"RSA","kid":"a","n":N,"e":"AQAB"}));
    let e = key_entry(&k, &[Algorithm::RS256, Algorithm::ES256]).unwrap();
    assert_eq!(e.algs, vec![Algorithm::RS256]);
}

#[test]
fn jwk_alg_narrows_the_list() {
    let k = jwk(serde_json::json!({"kty":"RSA","kid":"a","alg":"PS256","n":N,"e":"AQAB"}));
    assert!(key_entry(&k, &[Algorithm::RS256]).is_none());
    let e = key_entry(&k, &[Algorithm::RS256, Algorithm::PS256]).unwrap();
    assert_eq!(e.algs, vec![Algorithm::PS256]);
}

#[test]
fn keys_whose_key_ops_do_not_allow_verifying_are_refused() {
    let enc =
        jwk(serde_json::json!({"kty":"RSA","kid":"e","key_ops":["encrypt"],"n":N,"e":"AQAB"}));
    assert!(key_entry(&enc, &[Algorithm::RS256]).is_none());
    let ok = jwk(serde_json::json!({"kty":"RSA","kid":"v","key_ops":["verify"],"n":N,"e":"AQAB"}));
    assert!(key_entry(&ok, &[Algorithm::RS256]).is_some());
}

#[test]
fn symmetric_and_encryption_keys_are_refused() {
    let oct = jwk(serde_json::json!({"kty":"oct","kid":"h","k":"c2VjcmV0"}));
    assert!(key_entry(&oct, &[Algorithm::HS256, Algorithm::RS256]).is_none());
    let enc = jwk(serde_json::json!({"kty":"RSA","kid":"e","use":"enc","n":N,"e":"AQAB"}));
    assert!(key_entry(&enc, &[Algorithm::RS256]).is_none());
}

#[test]
fn key_identity_is_the_rfc7638_thumbprint() {
    // The example of RFC 7638, section 3.1.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let entry = |v: serde_json::Value| key_entry(&jwk(v), &[Algorithm::RS256]).unwrap();
    let rfc =
        entry(serde_json::json!({"kty":"RSA","kid":"2011-04-29","alg":"RS256","n":n,"e":"AQAB"}));
    assert_eq!(
        &*rfc.thumbprint,
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // The key material makes the identity; kid and alg do not.
    let no_kid = entry(serde_json::json!({"kty":"RSA","n":n,"e":"AQAB"}));
    assert_eq!(no_kid.thumbprint, rfc.thumbprint);
    let same_kid_other_key =
        entry(serde_json::json!({"kty":"RSA","kid":"2011-04-29","n":N,"e":"AQAB"}));
    assert_ne!(same_kid_other_key.thumbprint, rfc.thumbprint);
}

#[test]
fn missing_kid_needs_exactly_one_candidate() {
    let mk = |kid: &str| {
        Arc::new(
            key_entry(
                &jwk(serde_json::json!({"kty":"RSA","kid":kid,"n":N,"e":"AQAB"})),
                &[Algorithm::RS256],
            )
            .unwrap(),
        )
    };
    let mut set = KeySet::default();
    let a = mk("a");
    set.by_kid.insert("a".into(), a.clone());
    set.all.push(a);
    assert!(matches!(
        set.lookup(None, Algorithm::RS256),
        KeyLookup::Found(_)
    ));
    assert!(matches!(
        set.lookup(Some("a"), Algorithm::ES256),
        KeyLookup::WrongAlgorithm
    ));
    assert!(matches!(
        set.lookup(Some("zz"), Algorithm::RS256),
        KeyLookup::Unknown
    ));
    let b = mk("b");
    set.by_kid.insert("b".into(), b.clone());
    set.all.push(b);
    assert!(matches!(
        set.lookup(None, Algorithm::RS256),
        KeyLookup::Ambiguous
    ));
}
