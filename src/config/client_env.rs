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
                let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                    env(
                        "AUTH_CLIENT_KEY_FILE",
                        format!("cannot read {}: {e}", path.trim()),
                    )
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
