//! How the app authenticates to the provider: with its client secret, or with a private key
//! (`private_key_jwt`: RFC 7523 section 2.2 and OpenID Connect Core 1.0 section 9).
//!
//! With a private key, every call to the token endpoint (code exchange, refresh), the
//! revocation endpoint and the pushed authorization request endpoint carries a fresh signed
//! assertion instead of a secret:
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//! `client_assertion=<JWT>` whose `iss` and `sub` are the client id, `aud` the token endpoint
//! (or the issuer), `jti` random, `iat` now and `exp` 60 seconds later.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;

use super::ProviderError;
use crate::config::error::ConfigError;
use crate::config::Algorithm;

/// RFC 7523 section 2.2: the `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: about a minute after the layer's clock.
const ASSERTION_LIFETIME: i64 = 60;

/// How the app authenticates to the provider's token, revocation and pushed authorization
/// request endpoints ([`AuthLayerBuilder::client_auth`](crate::AuthLayerBuilder::client_auth)).
///
/// ```
/// use tower_oidc_auth::{Algorithm, ClientAuth, ClientKey};
/// # let pem = tower_oidc_auth::testing::client_key_pem(Algorithm::ES256);
/// let key = ClientKey::from_pem(&pem).expect("a P-256 or RSA private key");
/// let auth = ClientAuth::PrivateKeyJwt { key, alg: Algorithm::ES256, kid: Some("key-1".into()) };
/// # let _ = auth;
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// The client secret ([`client_secret`](crate::AuthLayerBuilder::client_secret)), sent as
    /// `client_secret_post` or `client_secret_basic` as the provider's discovery document says
    /// (the default).
    #[default]
    ClientSecret,
    /// `private_key_jwt`: a JWT signed with the app's private key for every call. The provider
    /// holds the public key (see [`ClientKey::public_jwk`]); no client secret is needed.
    PrivateKeyJwt {
        /// The private key.
        key: ClientKey,
        /// [`Algorithm::RS256`] (an RSA key) or [`Algorithm::ES256`] (a P-256 key).
        alg: Algorithm,
        /// The `kid` put in the assertion's header, as registered at the provider.
        kid: Option<String>,
    },
}

impl ClientAuth {
    /// `private_key_jwt` with `key`, its natural algorithm ([`ClientKey::algorithm`]) and no
    /// `kid`.
    pub fn private_key_jwt(key: ClientKey) -> Self {
        let alg = key.algorithm();
        Self::PrivateKeyJwt {
            key,
            alg,
            kid: None,
        }
    }
}

/// The `aud` of client assertions ([`AuthLayerBuilder::client_assertion_audience`]).
///
/// [`AuthLayerBuilder::client_assertion_audience`]: crate::AuthLayerBuilder::client_assertion_audience
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The token endpoint URL, as OpenID Connect Core section 9 recommends (the default).
    #[default]
    TokenEndpoint,
    /// The issuer identifier, as RFC 9126 section 2 recommends and some providers require.
    Issuer,
}

/// A private key for [`ClientAuth::PrivateKeyJwt`]: RSA (RS256, at least 2048 bits) or
/// P-256 (ES256). `Debug` prints only its type.
#[derive(Clone)]
pub struct ClientKey {
    key: EncodingKey,
    kind: KeyKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("kind", &self.kind)
            .field("key", &format_args!("REDACTED"))
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what: "client_key",
        reason: reason.into(),
    }
}

impl ClientKey {
    /// A private key in PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes),
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`) or SEC 1 (`BEGIN EC PRIVATE KEY`). Encrypted keys are
    /// not read.
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let text = pem.as_ref();
        // The PEM reader's own error may quote a line of the input (a line of key material
        // before a blank line reads as a header): never shown.
        let blocks = pem::parse_many(text).map_err(|_| {
            invalid("not PEM that can be read: a damaged key (a blank or cut line?), or not a key")
        })?;
        let block = blocks
            .iter()
            .find(|b| b.tag().ends_with("PRIVATE KEY"))
            .ok_or_else(|| {
                invalid(match blocks.first() {
                    Some(b) => format!(
                        "the PEM holds a {:?}, not a private key; give the private key",
                        b.tag()
                    ),
                    None => "no PEM block found".into(),
                })
            })?;
        let der = block.contents();
        match block.tag() {
            "ENCRYPTED PRIVATE KEY" => Err(invalid(
                "the key is encrypted; decrypt it first (openssl pkcs8 -in key.pem -nocrypt)",
            )),
            "RSA PRIVATE KEY" => Self::rsa_pem(&pem::encode(block)),
            "EC PRIVATE KEY" => Self::p256_der(der),
            "PRIVATE KEY" => {
                if aws_lc_rs::rsa::KeyPair::from_pkcs8(der).is_ok() {
                    Self::rsa_pem(&pem::encode(block))
                } else {
                    Self::p256_der(der)
                }
            }
            other => Err(invalid(format!("unsupported PEM block {other:?}"))),
        }
    }

    /// A private JWK (RFC 7517; RFC 7518 section 6): `{"kty":"RSA","n",..,"d","p","q","dp",
    /// "dq","qi"}` or `{"kty":"EC","crv":"P-256","x","y","d"}`, as JSON text.
    pub fn from_jwk(jwk: &str) -> Result<Self, ConfigError> {
        let value: Value =
            serde_json::from_str(jwk).map_err(|e| invalid(format!("not a JWK: {e}")))?;
        let field = |name: &str| -> Result<Vec<u8>, ConfigError> {
            let text = value.get(name).and_then(Value::as_str).ok_or_else(|| {
                invalid(format!("the JWK has no {name:?}; a private key is needed"))
            })?;
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| invalid(format!("the JWK's {name:?} is not base64url")))
        };
        match value.get("kty").and_then(Value::as_str) {
            Some("RSA") => {
                if value.get("oth").is_some() {
                    return Err(invalid("multi-prime RSA keys are not supported"));
                }
                let strip = |v: Vec<u8>| {
                    let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
                    v[start..].to_vec()
                };
                let components = aws_lc_rs::rsa::KeyPairComponents {
                    public_key: aws_lc_rs::rsa::PublicKeyComponents {
                        n: strip(field("n")?),
                        e: strip(field("e")?),
                    },
                    d: field("d")?,
                    p: field("p")?,
                    q: field("q")?,
                    dP: field("dp")?,
                    dQ: field("dq")?,
                    qInv: field("qi")?,
                };
                let pair = aws_lc_rs::rsa::KeyPair::from_components(&components)
                    .map_err(|e| invalid(format!("the RSA JWK is not a usable key: {e}")))?;
                let der = pair
                    .as_der()
                    .map_err(|_| invalid("the RSA JWK cannot be encoded"))?;
                Self::rsa_pem(&pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref())))
            }
            Some("EC") => {
                if value.get("crv").and_then(Value::as_str) != Some("P-256") {
                    return Err(invalid("only P-256 EC keys are supported (ES256)"));
                }
                let mut public = vec![4u8];
                public.extend(field("x")?);
                public.extend(field("y")?);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &field("d")?,
                    &public,
                )
                .map_err(|e| invalid(format!("the EC JWK is not a usable key: {e}")))?;
                Self::p256_pair(&pair)
            }
            _ => Err(invalid("the JWK's kty must be \"RSA\" or \"EC\"")),
        }
    }

    /// A private key from a file's text: a JWK when it starts with `{`, else PEM.
    pub fn from_text(text: &str) -> Result<Self, ConfigError> {
        if text.trim_start().starts_with('{') {
            Self::from_jwk(text)
        } else {
            Self::from_pem(text)
        }
    }

    fn rsa_pem(pem_text: &str) -> Result<Self, ConfigError> {
        let key = EncodingKey::from_rsa_pem(pem_text.as_bytes())
            .map_err(|e| invalid(format!("not a usable RSA private key: {e}")))?;
        Self::probed(key, KeyKind::Rsa)
    }

    fn p256_der(der: &[u8]) -> Result<Self, ConfigError> {
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| invalid("neither an RSA key nor a P-256 EC key"))?;
        Self::p256_pair(&pair)
    }

    fn p256_pair(pair: &EcdsaKeyPair) -> Result<Self, ConfigError> {
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| invalid("the EC key cannot be encoded"))?;
        Self::probed(EncodingKey::from_ec_der(pkcs8.as_ref()), KeyKind::P256)
    }

    /// The key, once it has signed something: a key that cannot sign fails here, at
    /// configuration, not at the first login.
    fn probed(key: EncodingKey, kind: KeyKind) -> Result<Self, ConfigError> {
        let me = Self { key, kind };
        jsonwebtoken::crypto::sign(b"probe", &me.key, me.algorithm().jwt())
            .map_err(|e| invalid(format!("the key cannot sign: {e}")))?;
        Ok(me)
    }

    /// The algorithm this key signs with: RS256 for RSA, ES256 for P-256.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self.kind {
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::P256 => Algorithm::ES256,
        }
    }

    /// The public half as a JWK (with `use: sig`, `alg`, and `kid` if given): what to register
    /// at the provider (its `jwks` for this client).
    #[must_use]
    pub fn public_jwk(&self, kid: Option<&str>) -> Value {
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.key, self.algorithm().jwt())
            .ok()
            .and_then(|j| serde_json::to_value(j).ok())
            .unwrap_or(Value::Null);
        let mut jwk = jwk;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("use".into(), "sig".into());
            if let Some(kid) = kid {
                obj.insert("kid".into(), kid.into());
            }
        }
        jwk
    }
}

/// Signs client assertions for one client and audience.
#[derive(Clone)]
pub(crate) struct Assertions {
    inner: Arc<AssertionsInner>,
}

struct AssertionsInner {
    key: EncodingKey,
    alg: jsonwebtoken::Algorithm,
    kid: Option<String>,
    client_id: String,
    audience: String,
}

impl fmt::Debug for Assertions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assertions")
            .field("alg", &self.inner.alg)
            .field("kid", &self.inner.kid)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

impl Assertions {
    /// Checks that `alg` fits the key (RS256 for RSA, ES256 for P-256).
    pub(crate) fn new(
        key: &ClientKey,
        alg: Algorithm,
        kid: Option<String>,
        client_id: String,
        audience: String,
    ) -> Result<Self, ConfigError> {
        if !matches!(alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(ConfigError::Invalid {
                what: "client_auth",
                reason: format!("private_key_jwt signs with RS256 or ES256, not {alg:?}"),
            });
        }
        if alg != key.algorithm() {
            return Err(ConfigError::Invalid {
                what: "client_auth",
                reason: format!(
                    "the key is for {:?}, but the algorithm is {alg:?}",
                    key.algorithm()
                ),
            });
        }
        Ok(Self {
            inner: Arc::new(AssertionsInner {
                key: key.key.clone(),
                alg: alg.jwt(),
                kid,
                client_id,
                audience,
            }),
        })
    }

    /// The algorithm's name, as discovery lists them.
    pub(crate) fn alg_name(&self) -> &'static str {
        match self.inner.alg {
            jsonwebtoken::Algorithm::ES256 => "ES256",
            _ => "RS256",
        }
    }

    /// A fresh assertion at `now` (seconds since the epoch): a random `jti`, `exp` a minute on.
    pub(crate) fn sign(&self, now: i64) -> Result<String, ProviderError> {
        let inner = &self.inner;
        let mut header = Header::new(inner.alg);
        header.kid = inner.kid.clone();
        let exp = now
            .checked_add(ASSERTION_LIFETIME)
            .ok_or_else(|| ProviderError::Malformed("clock out of range".into()))?;
        let claims = serde_json::json!({
            "iss": inner.client_id,
            "sub": inner.client_id,
            "aud": inner.audience,
            "jti": crate::token::random_token(),
            "iat": now,
            "exp": exp,
        });
        jsonwebtoken::encode(&header, &claims, &inner.key)
            .map_err(|e| ProviderError::Malformed(format!("cannot sign the client assertion: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es256_pem() -> String {
        let doc = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        pem::encode(&pem::Pem::new("PRIVATE KEY", doc.as_ref()))
    }

    #[test]
    fn assertion_claims_follow_rfc7523() {
        let key = ClientKey::from_pem(es256_pem()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::ES256);
        let a = Assertions::new(
            &key,
            Algorithm::ES256,
            Some("k1".into()),
            "cid".into(),
            "https://op.example/token".into(),
        )
        .unwrap();
        let one = a.sign(1_000).unwrap();
        let two = a.sign(1_000).unwrap();
        let header = jsonwebtoken::decode_header(&one).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let claims = |t: &str| {
            jsonwebtoken::dangerous::insecure_decode::<Value>(t)
                .unwrap()
                .claims
        };
        let c = claims(&one);
        assert_eq!(c["iss"], "cid");
        assert_eq!(c["sub"], "cid");
        assert_eq!(c["aud"], "https://op.example/token");
        assert_eq!(c["iat"], 1_000);
        assert_eq!(c["exp"], 1_060);
        assert_ne!(
            c["jti"],
            claims(&two)["jti"],
            "each assertion has its own jti"
        );
        // The public JWK verifies it.
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(key.public_jwk(Some("k1"))).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&["https://op.example/token"]);
        v.validate_exp = false;
        jsonwebtoken::decode::<Value>(
            &one,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
            &v,
        )
        .unwrap();
    }

    #[test]
    fn keys_from_jwk_and_bad_input() {
        use aws_lc_rs::encoding::AsBigEndian;
        // The private JWK of a P-256 key, built from its PKCS#8 with the crate's own helpers.
        let pem_text = es256_pem();
        let key = ClientKey::from_pem(&pem_text).unwrap();
        let public = key.public_jwk(None);
        let block = pem::parse(&pem_text).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, block.contents()).unwrap();
        let d = pair.private_key().as_be_bytes().unwrap();
        let mut private = public.clone();
        private["d"] = URL_SAFE_NO_PAD.encode(d.as_ref()).into();
        let again = ClientKey::from_jwk(&private.to_string()).unwrap();
        assert_eq!(again.public_jwk(None), public);
        assert!(
            ClientKey::from_jwk(&public.to_string()).is_err(),
            "public JWK"
        );
        assert!(ClientKey::from_pem("not a key").is_err());
        assert!(ClientKey::from_jwk("{\"kty\":\"oct\",\"k\":\"AAAA\"}").is_err());
        let wrong = Assertions::new(&key, Algorithm::RS256, None, "c".into(), "a".into());
        assert!(wrong.is_err(), "RS256 with a P-256 key");
    }
}
