//! The client authentication and PAR settings from the environment: `AUTH_CLIENT_KEY`,
//! `AUTH_CLIENT_KEY_FILE`, `AUTH_CLIENT_KEY_ID` and `AUTH_PAR`.

use crate::provider::{ClientAuth, ClientKey, Par};

use super::{AuthLayerBuilder, ConfigError};

impl AuthLayerBuilder {
    /// Reads the app's private key and PAR setting from the environment, as
    /// [`provider_from_env`](Self::provider_from_env) does:
    ///
    /// - `AUTH_CLIENT_KEY` (a PEM or JWK private key, as text) or `AUTH_CLIENT_KEY_FILE` (the
    ///   path of one): authenticate with [`ClientAuth::PrivateKeyJwt`] (RS256 for an RSA key,
    ///   ES256 for P-256) instead of a client secret, which is then not needed;
    ///   `AUTH_CLIENT_KEY_ID` (optional) is the `kid` of its assertions.
    /// - `AUTH_PAR` (optional): `auto`, `required` or `off`; see
    ///   [`pushed_authorization_requests`](Self::pushed_authorization_requests).
    ///
    /// Unset, the builder is unchanged.
    pub fn client_auth_from_env(self) -> Result<Self, ConfigError> {
        self.client_auth_from_lookup(&|k: &str| std::env::var(k).ok())
    }

    pub(crate) fn client_auth_from_lookup(
        mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env = |var: &'static str, reason: String| ConfigError::Env { var, reason };
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let key = match (set("AUTH_CLIENT_KEY"), set("AUTH_CLIENT_KEY_FILE")) {
            (Some(_), Some(_)) => {
                return Err(env(
                    "AUTH_CLIENT_KEY",
                    "AUTH_CLIENT_KEY_FILE is set too; set only one of them".into(),
                ))
            }
            (Some(text), None) => Some(
                ClientKey::from_text(&text).map_err(|e| env("AUTH_CLIENT_KEY", e.to_string()))?,
            ),
            (None, Some(path)) => {
                let path = path.trim();
                // A key pasted where its path belongs must not be printed back: the path is
                // named only when it looks like one.
                let key_like = path.len() > 1024
                    || path.contains(['\n', '\r', '{'])
                    || path.contains("-----")
                    || path.contains("PRIVATE");
                let text = std::fs::read_to_string(path).map_err(|e| {
                    let reason = if key_like {
                        "it holds key material, not a file path: put the key in AUTH_CLIENT_KEY, \
                         or its path here"
                            .to_owned()
                    } else {
                        format!("cannot read {path}: {e}")
                    };
                    env("AUTH_CLIENT_KEY_FILE", reason)
                })?;
                Some(
                    ClientKey::from_text(&text)
                        .map_err(|e| env("AUTH_CLIENT_KEY_FILE", e.to_string()))?,
                )
            }
            (None, None) => None,
        };
        if let Some(key) = key {
            self = self.client_auth(ClientAuth::PrivateKeyJwt {
                alg: key.algorithm(),
                key,
                kid: set("AUTH_CLIENT_KEY_ID").map(|k| k.trim().to_owned()),
            });
        }
        if let Some(par) = set("AUTH_PAR") {
            let par = match par.trim().to_ascii_lowercase().as_str() {
                "auto" => Par::Auto,
                "required" => Par::Required,
                "off" => Par::Off,
                _ => {
                    return Err(env(
                        "AUTH_PAR",
                        "expected `auto`, `required` or `off`".into(),
                    ))
                }
            };
            self = self.pushed_authorization_requests(par);
        }
        Ok(self)
    }

    /// Whether `AUTH_CLIENT_KEY` or `AUTH_CLIENT_KEY_FILE` is set: then no client secret is
    /// needed.
    pub(crate) fn has_client_key(get: &impl Fn(&str) -> Option<String>) -> bool {
        ["AUTH_CLIENT_KEY", "AUTH_CLIENT_KEY_FILE"]
            .iter()
            .any(|k| get(k).is_some_and(|v| !v.trim().is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// A private key in the environment replaces the client secret; `AUTH_PAR` is read; a bad
    /// value names its variable.
    #[test]
    fn a_key_in_the_environment_needs_no_secret() {
        let pem = crate::testing::client_key_pem(crate::Algorithm::ES256);
        let cookie =
            base64::engine::general_purpose::STANDARD.encode(crate::testing::cookie_key(4));
        let base = [
            ("OIDC_ISSUER", "https://op.example"),
            ("OIDC_CLIENT_ID", "app"),
            ("AUTH_REDIRECT_URL", "https://app.example/auth/callback"),
            ("AUTH_COOKIE_KEY", cookie.as_str()),
        ];
        // Without a key the secret is required.
        assert!(matches!(
            AuthLayerBuilder::from_lookup(lookup(&base)),
            Err(ConfigError::Env {
                var: "OIDC_CLIENT_SECRET",
                ..
            })
        ));
        let mut with_key = base.to_vec();
        with_key.push(("AUTH_CLIENT_KEY", pem.as_str()));
        with_key.push(("AUTH_CLIENT_KEY_ID", "k1"));
        with_key.push(("AUTH_PAR", "Required"));
        let cfg = AuthLayerBuilder::from_lookup(lookup(&with_key)).unwrap();
        assert!(matches!(
            &cfg.client_auth,
            ClientAuth::PrivateKeyJwt { kid: Some(k), alg: crate::Algorithm::ES256, .. } if k == "k1"
        ));
        assert_eq!(cfg.par, Par::Required);
        cfg.validate().expect("valid without a secret");

        let mut bad = base.to_vec();
        bad.push((
            "AUTH_CLIENT_KEY",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        ));
        assert!(matches!(
            AuthLayerBuilder::from_lookup(lookup(&bad)),
            Err(ConfigError::Env {
                var: "AUTH_CLIENT_KEY",
                ..
            })
        ));
        let mut par = with_key.clone();
        par.retain(|(k, _)| *k != "AUTH_PAR");
        par.push(("AUTH_PAR", "sometimes"));
        assert!(matches!(
            AuthLayerBuilder::from_lookup(lookup(&par)),
            Err(ConfigError::Env {
                var: "AUTH_PAR",
                ..
            })
        ));
    }
}
