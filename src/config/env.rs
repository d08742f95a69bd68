//! Loading the configuration from environment variables, and the parsers of their values.

use std::time::Duration;

use base64::Engine;

use crate::provider::Provider;

use super::*;

impl AuthLayerBuilder {
    /// Reads the configuration from the environment.
    ///
    /// - `SCALEKIT_ENVIRONMENT_URL`, `SCALEKIT_CLIENT_ID`, `SCALEKIT_CLIENT_SECRET` select
    ///   Scalekit; otherwise `OIDC_ISSUER`, `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET` select any
    ///   provider by discovery.
    /// - `AUTH_REDIRECT_URL`: the callback URL registered at the provider.
    /// - `AUTH_COOKIE_KEY`: base64, at least 64 bytes; several separated by commas rotate keys
    ///   (the first encrypts, all decrypt).
    /// - `SCALEKIT_WEBHOOK_SECRET` (optional): enables `POST <base_path>/webhook`; see
    ///   [`webhook_secret`](Self::webhook_secret).
    /// - `SCALEKIT_API_AUDIENCE` (optional): access-token audiences accepted besides the client
    ///   id, separated by commas (see [`audience`](Self::audience)).
    /// - `AUTH_SESSION_MAX_AGE`, `AUTH_SESSION_IDLE_TIMEOUT` (optional): see
    ///   [`session_lifetime_from_env`](Self::session_lifetime_from_env).
    ///
    /// Each part can be read alone, for apps that set the rest in code:
    /// [`provider_from_env`](Self::provider_from_env),
    /// [`cookie_keys_from_env`](Self::cookie_keys_from_env),
    /// [`webhook_secret_from_env`](Self::webhook_secret_from_env) and
    /// [`session_lifetime_from_env`](Self::session_lifetime_from_env).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let cfg = Self::new().provider_from_lookup(&get)?;
        let redirect = required(&get, "AUTH_REDIRECT_URL")?;
        cfg.redirect_url(redirect)
            .cookie_keys_from_lookup(&get)?
            .webhook_secret_from_lookup(&get)?
            .lifetime_from_lookup(&get)?
            .session_store_from_lookup(&get)
    }

    /// Reads `AUTH_SESSION_STORE` when it is set, as [`from_env`](Self::from_env) does: where
    /// sessions live (see [`session_store`](Self::session_store)).
    ///
    /// - `memory`: a [`MemorySessionStore`](crate::session_store::MemorySessionStore) (one
    ///   instance);
    /// - `redis://..` or `rediss://..` (feature `redis`): Redis, connected by
    ///   [`build`](Self::build). Unless set in code, the revocation store and the refresh
    ///   coordinator use the same Redis too (the coordinator shares the store's connection),
    ///   so that several instances share sessions, logouts and refreshes.
    ///
    /// Unset, the builder is unchanged (sessions in cookies); anything else is a
    /// [`ConfigError::Env`].
    pub fn session_store_from_env(self) -> Result<Self, ConfigError> {
        self.session_store_from_lookup(&|k: &str| std::env::var(k).ok())
    }

    pub(crate) fn session_store_from_lookup(
        mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let Some(value) = get("AUTH_SESSION_STORE") else {
            return Ok(self);
        };
        let value = value.trim();
        let env = |reason: &str| ConfigError::Env {
            var: "AUTH_SESSION_STORE",
            reason: reason.to_owned(),
        };
        if value.eq_ignore_ascii_case("memory") {
            self.session_store_url = None;
            return Ok(self.session_store(crate::session_store::MemorySessionStore::new()));
        }
        let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if matches!(scheme.as_deref(), Some("redis" | "rediss")) {
            if !cfg!(feature = "redis") {
                return Err(env(
                    "a Redis URL needs the crate's `redis` feature: add `features = [\"redis\"]`",
                ));
            }
            if url::Url::parse(value).is_err() {
                return Err(env("not a valid Redis URL (redis://host:port)"));
            }
            self.session_store_url = Some(crate::Secret::new(value));
            return Ok(self);
        }
        Err(env("expected `memory` or a Redis URL (redis://host:port)"))
    }

    /// Reads the provider and this app's credentials from the environment, as
    /// [`from_env`](Self::from_env) does:
    ///
    /// - `SCALEKIT_ENVIRONMENT_URL`, `SCALEKIT_CLIENT_ID`, `SCALEKIT_CLIENT_SECRET` select
    ///   Scalekit; otherwise `OIDC_ISSUER`, `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET` select any
    ///   provider by discovery ([`Provider::from_env`] tells whether either is set);
    /// - `SCALEKIT_API_AUDIENCE` (optional): access-token audiences accepted besides the client
    ///   id, separated by commas (see [`audience`](Self::audience)).
    /// - `AUTH_CLIENT_KEY` / `AUTH_CLIENT_KEY_FILE`, `AUTH_CLIENT_KEY_ID`, `AUTH_PAR`
    ///   (optional): see [`client_auth_from_env`](Self::client_auth_from_env); with a key, the
    ///   client secret is optional.
    ///
    /// A variable that is missing is a [`ConfigError::Env`] naming it.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), tower_oidc_auth::ConfigError> {
    /// let auth = tower_oidc_auth::AuthLayer::builder()
    ///     .provider_from_env()?
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .cookie_keys_from_env()?
    ///     .build()
    ///     .await?;
    /// # let _ = auth; Ok(()) }
    /// ```
    pub fn provider_from_env(self) -> Result<Self, ConfigError> {
        self.provider_from_lookup(&|k: &str| std::env::var(k).ok())
    }

    pub(crate) fn provider_from_lookup(
        mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let (provider, id, secret) = match Provider::from_lookup(get)? {
            Some(provider) if provider.is_scalekit() => {
                (provider, "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET")
            }
            Some(provider) => (provider, "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"),
            None => {
                return Err(ConfigError::Env {
                    var: "SCALEKIT_ENVIRONMENT_URL",
                    reason: "set it (or OIDC_ISSUER) to choose a provider".into(),
                })
            }
        };
        self = self.provider(provider).client_id(required(get, id)?);
        // With a private key (AUTH_CLIENT_KEY, AUTH_CLIENT_KEY_FILE) the secret is optional.
        self = if Self::has_client_key(get) {
            let with_secret = match optional(get, secret)? {
                Some(s) => self.client_secret(s),
                None => self,
            };
            with_secret.client_auth_from_lookup(get)?
        } else {
            self.client_secret(required(get, secret)?)
                .client_auth_from_lookup(get)?
        };
        if let Some(audiences) = get("SCALEKIT_API_AUDIENCE") {
            for aud in audiences
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                self = self.audience(aud);
            }
        }
        Ok(self)
    }

    /// Reads the cookie keys from `AUTH_COOKIE_KEY`, as [`from_env`](Self::from_env) does:
    /// base64, at least 64 bytes; several separated by commas rotate keys (the first encrypts,
    /// all decrypt). They replace any keys set before (the variable is the whole list).
    /// Missing or unusable, it is a [`ConfigError::Env`].
    pub fn cookie_keys_from_env(self) -> Result<Self, ConfigError> {
        self.cookie_keys_from_lookup(&|k: &str| std::env::var(k).ok())
    }

    pub(crate) fn cookie_keys_from_lookup(
        mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let keys = required(get, "AUTH_COOKIE_KEY")?;
        self.cookie_keys.clear();
        for (i, part) in keys.split(',').map(str::trim).enumerate() {
            let bytes = decode_key(part).map_err(|reason| ConfigError::Env {
                var: "AUTH_COOKIE_KEY",
                reason: format!("key {}: {reason}", i + 1),
            })?;
            self = self.cookie_key(bytes);
        }
        Ok(self)
    }

    /// Reads `SCALEKIT_WEBHOOK_SECRET` when it is set, as [`from_env`](Self::from_env) does:
    /// the signing secret the Scalekit dashboard shows, which enables
    /// `POST <base_path>/webhook` (see [`webhook_secret`](Self::webhook_secret)). Unset, the
    /// builder is unchanged; malformed, it is a [`ConfigError::Env`].
    pub fn webhook_secret_from_env(self) -> Result<Self, ConfigError> {
        self.webhook_secret_from_lookup(&|k: &str| std::env::var(k).ok())
    }

    pub(crate) fn webhook_secret_from_lookup(
        self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let Some(secret) = optional(get, "SCALEKIT_WEBHOOK_SECRET")? else {
            return Ok(self);
        };
        if crate::webhook::WebhookSecret::parse(&secret).is_err() {
            return Err(ConfigError::Env {
                var: "SCALEKIT_WEBHOOK_SECRET",
                reason: "expected whsec_ followed by base64 of at least 16 bytes, as the \
                         Scalekit dashboard shows it"
                    .into(),
            });
        }
        Ok(self.webhook_secret(secret.trim()))
    }

    /// Reads the session lifetime from the environment, as [`from_env`](Self::from_env) does;
    /// for apps that build the rest of their configuration in code. Each variable is optional
    /// and, when set, a duration such as `25s`, `90m`, `8h`, `7d` or `1d12h` (units `s`, `m`,
    /// `h`, `d`, largest first, whole numbers only):
    ///
    /// - `AUTH_SESSION_MAX_AGE`: [`session_max_age`](Self::session_max_age).
    /// - `AUTH_SESSION_IDLE_TIMEOUT`: [`session_idle_timeout`](Self::session_idle_timeout).
    ///
    /// A value that is not such a duration, or is zero, is a [`ConfigError::Env`] naming the
    /// variable.
    ///
    /// ```
    /// # fn f() -> Result<(), tower_oidc_auth::ConfigError> {
    /// let config = tower_oidc_auth::AuthLayer::builder().session_lifetime_from_env()?;
    /// # let _ = config; Ok(()) }
    /// ```
    pub fn session_lifetime_from_env(self) -> Result<Self, ConfigError> {
        self.lifetime_from_lookup(&|k: &str| std::env::var(k).ok())
    }

    pub(crate) fn lifetime_from_lookup(
        mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let duration = |var: &'static str| -> Result<Option<Duration>, ConfigError> {
            match optional(get, var)? {
                None => Ok(None),
                Some(v) => parse_duration(&v)
                    .map(Some)
                    .map_err(|reason| ConfigError::Env { var, reason }),
            }
        };
        if let Some(age) = duration("AUTH_SESSION_MAX_AGE")? {
            self = self.session_max_age(age);
        }
        if let Some(idle) = duration("AUTH_SESSION_IDLE_TIMEOUT")? {
            self = self.session_idle_timeout(idle);
        }
        Ok(self)
    }
}

impl Provider {
    /// The provider the environment names, as [`AuthLayerBuilder::from_env`] reads it:
    /// Scalekit when `SCALEKIT_ENVIRONMENT_URL` is set, the issuer in `OIDC_ISSUER` (by
    /// discovery) when that is; `None` when neither is set. Both set, or one set but empty, is
    /// a [`ConfigError::Env`]: the environment must say which provider it means.
    ///
    /// ```
    /// # fn f() -> Result<(), tower_oidc_auth::ConfigError> {
    /// match tower_oidc_auth::Provider::from_env()? {
    ///     Some(provider) => println!("signing in with {}", provider.issuer()),
    ///     None => println!("no provider configured"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(&|k: &str| std::env::var(k).ok())
    }

    pub(crate) fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let scalekit = optional(get, "SCALEKIT_ENVIRONMENT_URL")?;
        let issuer = optional(get, "OIDC_ISSUER")?;
        match (scalekit, issuer) {
            (Some(_), Some(_)) => Err(ConfigError::Env {
                var: "SCALEKIT_ENVIRONMENT_URL",
                reason: "OIDC_ISSUER is set too; set only one of them, to say which provider \
                         signs users in"
                    .into(),
            }),
            (Some(url), None) => Ok(Some(Provider::scalekit(url))),
            (None, Some(issuer)) => Ok(Some(Provider::discover(issuer))),
            (None, None) => Ok(None),
        }
    }
}

/// A variable that may be unset; set, it must not be blank. Its value without surrounding
/// whitespace (a trailing newline from a secrets file).
fn optional(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    match get(name) {
        None => Ok(None),
        Some(value) if value.trim().is_empty() => Err(ConfigError::Env {
            var: name,
            reason: "is set but empty; give it a value, or unset it".into(),
        }),
        Some(value) => Ok(Some(value.trim().to_owned())),
    }
}

/// A variable that must be set (and not blank), without surrounding whitespace.
fn required(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    optional(get, name)?.ok_or(ConfigError::Env {
        var: name,
        reason: "is not set".into(),
    })
}

/// Decodes a base64 cookie key (standard or URL-safe alphabet) of at least 64 bytes.
pub(crate) fn decode_key(text: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    // `openssl rand -base64 64` prints its 88 characters on two lines of 64, and `base64` wraps
    // at 76: those line breaks are not part of the key. Anything else split by whitespace (two
    // keys on two lines, meant as a rotation) would join into one key that is neither.
    let lines: Vec<&str> = text.split_ascii_whitespace().collect();
    if let Some((last, full)) = lines.split_last() {
        let width = full.first().map_or(0, |l| l.len());
        let wrapped = full.iter().all(|l| l.len() == width)
            && (width == 64 || width == 76)
            && last.len() <= width;
        if !full.is_empty() && !wrapped {
            return Err(format!(
                "{} values separated by whitespace; separate several keys with commas",
                lines.len()
            ));
        }
    }
    let text: String = lines.concat();
    if let Some(why) = typed(&text) {
        return Err(why);
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(&text).ok())
        .ok_or_else(|| "not valid base64".to_owned())?;
    if bytes.len() < 64 {
        return Err(format!("{} bytes; at least 64 are needed", bytes.len()));
    }
    Ok(bytes)
}

/// Why a key's text is not base64 as this variable takes it, if it is not: hex digits only
/// (`openssl rand -hex`, `secrets.token_hex`), which read as base64 would be other bytes than
/// the other readers of the variable use. 64 or more characters of the base64 of random bytes
/// are all hex digits with odds below 10^-29. (Typed keys are refused by the key checks, on
/// the decoded bytes.)
fn typed(text: &str) -> Option<String> {
    let t = text.trim_end_matches('=').as_bytes();
    if t.len() >= 64 && t.iter().all(u8::is_ascii_hexdigit) {
        return Some(
            "is hex (as `openssl rand -hex` prints it), but AUTH_COOKIE_KEY takes base64"
                .to_owned(),
        );
    }
    None
}

/// Parses a human-friendly duration: one or more `<whole number><unit>` groups with units
/// `d`, `h`, `m`, `s`, each at most once and largest first (`25s`, `8h`, `7d`, `1h30m`).
/// Surrounding whitespace is ignored; anything else (signs, fractions, spaces inside, a bare
/// number, an unknown unit, zero, overflow) is refused with the reason.
///
/// Written here rather than taken from `humantime`, which also accepts sub-second units,
/// months and years of average length, and spaces between groups: a lifetime is whole seconds,
/// and an unexpected reading of a security setting should be an error, not a guess.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];
    let explain = |why: &str| {
        format!("{why}; expected a duration such as 25s, 90m, 8h, 7d or 1h30m (got {text:?})")
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(explain("empty"));
    }
    let mut total: u64 = 0;
    // Units must come largest first, each once: index of the next allowed unit.
    let mut next_unit = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(explain("a number is expected before each unit"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| explain("number too large"))?;
        let mut chars = rest[digits..].chars();
        let unit = chars
            .next()
            .ok_or_else(|| explain("a unit (s, m, h or d) is missing"))?;
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(explain("unknown unit"));
        };
        if index < next_unit {
            return Err(explain("units must be given largest first, each once"));
        }
        next_unit = index + 1;
        total = number
            .checked_mul(UNITS[index].1)
            .and_then(|secs| total.checked_add(secs))
            .filter(|secs| i64::try_from(*secs).is_ok())
            .ok_or_else(|| explain("too large"))?;
        rest = chars.as_str();
    }
    if total == 0 {
        return Err(explain("must be at least one second"));
    }
    Ok(Duration::from_secs(total))
}
