//! From a builder to a layer in two steps: [`validate`] checks every setting without I/O
//! (`ConfigError`), then [`connect`] does discovery and the first key fetch.

use std::sync::Arc;

use cookie::Key;

use crate::config::{normalize_path, AuthLayerBuilder, ConfigError};
use crate::cookies::{app_part, CookieCodec};
use crate::provider::{
    AssertionAudience, Assertions, ClientAuth, ClientAuthMethod, HttpClient, Jwks, TokenAuth,
    TokenClient,
};
use crate::refresh::LocalRefreshCoordinator;
use crate::revocation::MemoryRevocationStore;
use crate::verify::{Expectations, Verifier};

use crate::layer::AuthLayer;
use crate::state::{secs, Settings, Shared};

/// A configuration whose every setting was checked: what the layer needs that does not come
/// from the provider.
pub(crate) struct Validated {
    /// The builder, for the parts [`connect`] uses as they are.
    cfg: AuthLayerBuilder,
    provider: crate::provider::Provider,
    /// The client secret; `None` with `private_key_jwt`.
    client_secret: Option<crate::Secret>,
    settings: Settings,
    cookies: CookieCodec,
}

pub(crate) async fn build(cfg: AuthLayerBuilder) -> Result<AuthLayer, ConfigError> {
    let mut validated = validate(cfg)?;
    if let Some(url) = validated.cfg.session_store_url.take() {
        validated.cfg = connect_session_store(validated.cfg, url.expose()).await?;
    }
    connect(validated).await
}

/// Connects the Redis of `AUTH_SESSION_STORE`: the session store, and unless set in code the
/// revocation store and the refresh coordinator, so that instances share all three. The store
/// and the coordinator share one connection manager; the revocation store keeps its own, with
/// its subscription.
#[cfg(feature = "redis")]
async fn connect_session_store(
    mut cfg: AuthLayerBuilder,
    url: &str,
) -> Result<AuthLayerBuilder, ConfigError> {
    let fail = |e: &dyn std::fmt::Display| ConfigError::Env {
        var: "AUTH_SESSION_STORE",
        reason: format!("cannot connect to Redis at {}: {e}", without_password(url)),
    };
    let client = redis::Client::open(url).map_err(|e| fail(&e))?;
    let manager = client
        .get_connection_manager()
        .await
        .map_err(|e| fail(&e))?;
    // Unless one is set in code, the layer takes its refresh coordinator from the store (a
    // `RedisRefreshCoordinator` on the same connection manager).
    cfg.session_store = Some(Arc::new(crate::redis_store::RedisSessionStore::new(
        manager,
    )));
    if cfg.revocation_store.is_none() {
        let revocations = crate::redis_store::RedisRevocationStore::connect(url)
            .await
            .map_err(|e| fail(&e))?;
        cfg.revocation_store = Some(Arc::new(revocations));
    }
    Ok(cfg)
}

#[cfg(not(feature = "redis"))]
async fn connect_session_store(
    _cfg: AuthLayerBuilder,
    _url: &str,
) -> Result<AuthLayerBuilder, ConfigError> {
    Err(ConfigError::Env {
        var: "AUTH_SESSION_STORE",
        reason: "a Redis URL needs the crate's `redis` feature".into(),
    })
}

/// A URL as it may be shown: without its password.
#[cfg(feature = "redis")]
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "the configured URL".to_owned(),
    }
}

/// In protected-resource mode, what a login client needs and a resource server does not: a
/// client id (the resource identifier names the layer instead), a secret, a redirect URL on
/// the resource's origin and a cookie key, none of them ever used (no routes, no cookies).
fn resource_defaults(mut cfg: AuthLayerBuilder) -> Result<AuthLayerBuilder, ConfigError> {
    let Some(rs) = &cfg.resource_server else {
        return Ok(cfg);
    };
    let url = crate::resource::check_resource(&rs.resource)?;
    let origin = url.origin().ascii_serialization();
    if cfg.client_id.is_none() {
        cfg.client_id = Some(rs.resource.clone());
    }
    if cfg.client_secret.is_none() {
        cfg.client_secret = Some(crate::token::random_token().into());
    }
    if cfg.redirect_url.is_none() {
        cfg.redirect_url = Some(format!("{origin}{}/unused", crate::resource::WELL_KNOWN));
    }
    if cfg.cookie_keys.is_empty() {
        let mut key = vec![0u8; 64];
        getrandom::fill(&mut key).map_err(|e| ConfigError::CookieKey(e.to_string()))?;
        cfg.cookie_keys.push(key);
    }
    cfg.bearer = true;
    Ok(cfg)
}

/// The trusted issuers' settings, checked without I/O: each an https issuer (http only on
/// loopback hosts), none the layer's own or named twice, each with at least one audience.
fn check_trusted_issuers(cfg: &AuthLayerBuilder) -> Result<(), ConfigError> {
    let name = |p: &crate::provider::Provider| p.issuer().trim_end_matches('/').to_owned();
    let mut seen: Vec<String> = cfg.provider.iter().map(name).collect();
    for (provider, audiences) in &cfg.trusted_issuers {
        provider.check()?;
        let issuer = name(provider);
        if seen.contains(&issuer) {
            return Err(ConfigError::Invalid {
                what: "trust_issuer",
                reason: format!(
                    "the issuer {issuer} is the layer's own provider or is trusted twice"
                ),
            });
        }
        if audiences.is_empty() || audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::Invalid {
                what: "trust_issuer",
                reason: format!(
                    "the issuer {issuer} needs at least one audience, and no blank one: its \
                     tokens must name an audience of this app"
                ),
            });
        }
        seen.push(issuer);
    }
    Ok(())
}

/// Checks every setting and derives the layer's settings, without I/O.
pub(crate) fn validate(cfg: AuthLayerBuilder) -> Result<Validated, ConfigError> {
    let cfg = resource_defaults(cfg)?;
    check_trusted_issuers(&cfg)?;
    let provider = cfg
        .provider
        .clone()
        .ok_or(ConfigError::Missing("provider"))?;
    provider.check()?;
    let client_id = cfg
        .client_id
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or(ConfigError::Missing("client_id"))?;
    if client_id.trim() != client_id {
        // Tokens would name the trimmed id, and every login would fail on `aud`.
        return Err(ConfigError::Invalid {
            what: "client_id",
            reason: format!("{client_id:?} has spaces or a line break around it"),
        });
    }
    let client_secret = match &cfg.client_auth {
        ClientAuth::PrivateKeyJwt { key, alg, kid } => {
            // The key and the algorithm must agree; the audience is known after discovery.
            Assertions::new(key, *alg, kid.clone(), client_id.clone(), String::new())?;
            None
        }
        ClientAuth::ClientSecret => Some(
            cfg.client_secret
                .clone()
                .filter(|s| !s.expose().trim().is_empty())
                .ok_or(ConfigError::Missing("client_secret"))?,
        ),
    };
    let redirect_raw = cfg
        .redirect_url
        .clone()
        .ok_or(ConfigError::Missing("redirect_url"))?;
    let redirect = url::Url::parse(&redirect_raw).map_err(|e| ConfigError::InvalidUrl {
        what: "redirect_url",
        value: redirect_raw.clone(),
        reason: e.to_string(),
    })?;
    let loopback_http = crate::config::is_loopback_http(&redirect);
    if redirect.scheme() != "https" && !loopback_http {
        return Err(ConfigError::InvalidUrl {
            what: "redirect_url",
            value: redirect_raw,
            reason: "must be https (http is accepted only for 127.0.0.1, localhost and [::1])"
                .into(),
        });
    }
    if redirect.fragment().is_some() || redirect.query().is_some() {
        return Err(ConfigError::InvalidUrl {
            what: "redirect_url",
            value: redirect_raw,
            reason: "must not have a query or fragment".into(),
        });
    }
    if loopback_http {
        tracing::info!(
            redirect_url = %redirect,
            "plain http on loopback: cookies are set without Secure and without __Host- prefixes; \
             use https everywhere else"
        );
    }
    if cfg.cookie_keys.is_empty() {
        return Err(ConfigError::Missing("cookie_key"));
    }
    let mut keys = Vec::with_capacity(cfg.cookie_keys.len());
    for (i, k) in cfg.cookie_keys.iter().enumerate() {
        let key = Key::try_from(k.as_slice()).map_err(|_| {
            ConfigError::CookieKey(format!(
                "key {} has {} bytes; at least 64 random bytes are needed",
                i + 1,
                k.len()
            ))
        })?;
        if let Some(why) = weakness(k) {
            return Err(ConfigError::CookieKey(format!("key {} {why}", i + 1)));
        }
        keys.push(key);
    }
    let webhooks = match (&cfg.webhook_secret, cfg.webhook_handlers.is_empty()) {
        (Some(secret), _) => Some(crate::webhook::Webhooks::new(
            crate::webhook::WebhookSecret::parse(secret.expose()).map_err(|_| {
                ConfigError::Invalid {
                    what: "webhook_secret",
                    reason: "expected whsec_ followed by the base64 of at least 16 bytes, as the \
                             Scalekit dashboard shows it (SCALEKIT_WEBHOOK_SECRET)"
                        .into(),
                }
            })?,
            cfg.webhook_handlers.clone(),
        )),
        (None, true) => None,
        (None, false) => {
            return Err(ConfigError::Invalid {
                what: "webhook_secret",
                reason: "on_webhook needs a webhook secret to verify deliveries".into(),
            })
        }
    };
    let base_path = normalize_path("base_path", &cfg.base_path)?;
    let session_path = normalize_path("session_path", &cfg.session_path)?;
    let callback_path = normalize_path("redirect_url path", redirect.path())?;
    let join = |p: &str| {
        if base_path == "/" {
            format!("/{p}")
        } else {
            format!("{base_path}/{p}")
        }
    };
    let login_path = join("login");
    let logout_path = join("logout");
    let backchannel_path = match &cfg.backchannel_path {
        Some(p) => normalize_path("backchannel_logout_path", p)?,
        None => join("backchannel-logout"),
    };
    let under = |path: &str| {
        session_path == "/" || path == session_path || path.starts_with(&format!("{session_path}/"))
    };
    if !under(&base_path) || !under(&callback_path) {
        return Err(ConfigError::Invalid {
            what: "session_path",
            reason: format!(
                "the auth routes ({base_path}) and callback ({callback_path}) must be under the \
                 session path {session_path}, so logout and refresh can see the session"
            ),
        });
    }
    let app_part = match &cfg.cookie_name {
        Some(name) => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConfigError::Invalid {
                    what: "cookie_name_prefix",
                    reason: format!("{name:?}: use letters, digits, '_' and '-'"),
                });
            }
            name.clone()
        }
        None => app_part(&client_id),
    };
    let origin = redirect.origin().ascii_serialization();
    let post_logout_url = match &cfg.post_logout_redirect_url {
        Some(u) => {
            url::Url::parse(u).map_err(|e| ConfigError::InvalidUrl {
                what: "post_logout_redirect_url",
                value: u.clone(),
                reason: e.to_string(),
            })?;
            u.clone()
        }
        None => format!(
            "{origin}{}",
            if session_path == "/" {
                "/"
            } else {
                &session_path
            }
        ),
    };
    let mut scopes = cfg.scopes.clone().unwrap_or_else(|| {
        ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec()
    });
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    if cfg.algorithms.is_empty() {
        return Err(ConfigError::Invalid {
            what: "algorithms",
            reason: "at least one algorithm is needed".into(),
        });
    }
    if let Some(clients) = &cfg.m2m_clients {
        clients.validate()?;
    }
    if cfg.session_max_age.as_secs() == 0 {
        return Err(ConfigError::Invalid {
            what: "session_max_age",
            reason: "must be at least one second".into(),
        });
    }
    if cfg.session_idle_timeout.is_some_and(|d| d.as_secs() == 0) {
        return Err(ConfigError::Invalid {
            what: "session_idle_timeout",
            reason: "must be at least one second".into(),
        });
    }
    if cfg.max_login_attempts == 0 {
        return Err(ConfigError::Invalid {
            what: "max_login_attempts",
            reason: "must be at least 1".into(),
        });
    }

    let cookies = CookieCodec::new(keys, !loopback_http, &app_part, &session_path, &base_path);
    let settings = Settings {
        client_id,
        redirect_url: redirect.to_string(),
        login_path,
        callback_path,
        logout_path,
        post_logout_url,
        scope: scopes.join(" "),
        authorize_params: cfg.authorize_params.clone(),
        max_login_attempts: cfg.max_login_attempts,
        login_timeout: secs(cfg.login_timeout),
        session_max_age: secs(cfg.session_max_age),
        session_idle_timeout: cfg.session_idle_timeout.map(secs),
        token_revocation_timeout: cfg.token_revocation_timeout,
        default_return: session_path.clone(),
        refresh_margin: secs(cfg.refresh_margin),
        backchannel_path,
        revocation_ttl: cfg.revocation_ttl,
        logout_token_max_age: secs(cfg.logout_token_max_age),
        webhook_path: join("webhook"),
        webhooks,
        bearer: cfg.bearer,
        explain_refusals: cfg.explain_refusals,
        refresh_timeout: cfg.refresh_timeout,
        origin: origin.clone(),
        approve_param: cfg.approve_param.clone(),
        client_ip: cfg.client_ip.clone(),
        session_claims: cfg.session_claims.clone(),
        hooks: cfg.hooks.clone(),
    };
    Ok(Validated {
        cfg,
        provider,
        client_secret,
        settings,
        cookies,
    })
}

/// Discovery and the first JWKS fetch: the layer, ready.
pub(crate) async fn connect(validated: Validated) -> Result<AuthLayer, ConfigError> {
    let Validated {
        cfg,
        provider,
        client_secret,
        settings,
        cookies,
    } = validated;
    let client_id = settings.client_id.clone();
    let http = HttpClient::new(cfg.http_timeout, cfg.max_response_bytes);
    let meta = provider.resolve(&http).await?;
    let jwks = Jwks::new(
        http.clone(),
        meta.jwks_uri.clone(),
        cfg.algorithms.clone(),
        cfg.clock.clone(),
        // At least a second: the rate limit counts whole seconds, and 0 would turn it off.
        secs(cfg.jwks_refetch_interval).max(1),
    );
    jwks.fetch_now().await.map_err(|source| ConfigError::Jwks {
        url: meta.jwks_uri.clone(),
        source,
    })?;
    let verifier = Verifier::new(
        jwks,
        Expectations {
            issuer: meta.issuer.clone(),
            client_id: client_id.clone(),
            audiences: match &cfg.resource_server {
                // A protected resource's tokens name it (RFC 8707), or a configured audience.
                Some(rs) => std::iter::once(rs.resource.clone())
                    .chain(cfg.audiences.iter().cloned())
                    .collect(),
                None => cfg.audiences.clone(),
            },
            leeway: secs(cfg.leeway),
            id_token_max_age: secs(cfg.id_token_max_age),
        },
        cfg.clock.clone(),
        cfg.cache_capacity,
    )
    .with_access_typ(cfg.access_token_typ.as_deref())
    .with_m2m_clients(cfg.m2m_clients.clone())
    // A protected resource accepts only tokens naming it (or a configured audience).
    .with_strict_audiences(cfg.resource_server.is_some());
    let trusted = trusted_verifiers(&cfg, &http, &meta.issuer, verifier.layer()).await?;
    let resource = match &cfg.resource_server {
        Some(rs) => {
            let mut servers = vec![meta.issuer.clone()];
            servers.extend(trusted.iter().map(|v| v.issuer().to_owned()));
            Some(Arc::new(crate::resource::ResourceSettings::new(
                rs, servers,
            )?))
        }
        None => None,
    };
    let auth = token_auth(&cfg, &meta, &provider, &client_id, client_secret)?;
    let par_endpoint = cfg.par.endpoint(&meta)?;
    let token = TokenClient {
        http,
        endpoint: meta.token_endpoint.clone(),
        client_id: client_id.clone(),
        auth,
        clock: cfg.clock.clone(),
        par_endpoint,
    };
    // Given none, the session store's (instances sharing the sessions share refreshes), or
    // this process's own.
    let coordinator = cfg
        .refresh_coordinator
        .or_else(|| {
            cfg.session_store
                .as_ref()
                .and_then(|s| s.refresh_coordinator(cfg.refresh_grace))
        })
        .unwrap_or_else(|| {
            Arc::new(LocalRefreshCoordinator::with_clock(
                cfg.refresh_grace,
                cfg.cache_capacity,
                cfg.clock.clone(),
            ))
        });
    let revocations = revocations_of(cfg.revocation_store, cfg.session_store.as_ref(), &cfg.clock);
    tracing::debug!(issuer = %meta.issuer, "OpenID provider ready");
    Ok(AuthLayer {
        shared: Arc::new(Shared {
            settings,
            meta,
            token,
            verifier,
            trusted,
            cookies: Arc::new(cookies),
            coordinator,
            // Stored sessions are remembered between requests only when a logout on another
            // instance reaches this one: through a revocation store the session store shares,
            // or one configured here (which the docs require to be shared).
            remember_stored: cfg.session_store.is_none() || revocations.shared,
            revocations: revocations.store,
            store: cfg.session_store,
            unsaved: quick_cache::sync::Cache::new(10_000),
            seen_jti: quick_cache::sync::Cache::new(10_000),
            sessions: crate::session_cache::SessionCache::new(cfg.session_cache_capacity),
            clock: cfg.clock,
            // The resource mode's answers are a `Responses` of their own: the extractors need
            // the layer's state to reach them.
            custom_responses: cfg.responses.is_some() || resource.is_some(),
            silent_login: Default::default(),
            responses: {
                let responses = cfg
                    .responses
                    .unwrap_or_else(|| Arc::new(crate::responses::DefaultResponses));
                match &resource {
                    Some(settings) => Arc::new(crate::resource::ResourceResponses {
                        inner: responses,
                        settings: settings.clone(),
                    }),
                    None => responses,
                }
            },
            resource,
        }),
    })
}

/// The verifiers of the trusted issuers: each one's discovery and first key fetch, its own key
/// cache and refetch limit, its own audiences (strictly: not the client id, never none), and
/// the layer's identity, so its claims pass the layer's guards.
async fn trusted_verifiers(
    cfg: &AuthLayerBuilder,
    http: &HttpClient,
    own_issuer: &str,
    layer: crate::claims::LayerId,
) -> Result<Vec<Verifier>, ConfigError> {
    let mut verifiers: Vec<Verifier> = Vec::with_capacity(cfg.trusted_issuers.len());
    for (provider, audiences) in &cfg.trusted_issuers {
        let meta = provider.resolve(http).await?;
        if meta.issuer == own_issuer || verifiers.iter().any(|v| v.issuer() == meta.issuer) {
            return Err(ConfigError::Invalid {
                what: "trust_issuer",
                reason: format!(
                    "the issuer {} is the layer's own provider or is trusted twice",
                    meta.issuer
                ),
            });
        }
        let jwks = Jwks::new(
            http.clone(),
            meta.jwks_uri.clone(),
            cfg.algorithms.clone(),
            cfg.clock.clone(),
            secs(cfg.jwks_refetch_interval).max(1),
        );
        jwks.fetch_now().await.map_err(|source| ConfigError::Jwks {
            url: meta.jwks_uri.clone(),
            source,
        })?;
        let verifier = Verifier::new(
            jwks,
            Expectations {
                issuer: meta.issuer.clone(),
                client_id: String::new(),
                audiences: audiences.clone(),
                leeway: secs(cfg.leeway),
                id_token_max_age: secs(cfg.id_token_max_age),
            },
            cfg.clock.clone(),
            cfg.cache_capacity,
        )
        .with_access_typ(cfg.access_token_typ.as_deref())
        .with_strict_audiences(true)
        .for_trusted_issuer(layer);
        verifiers.push(verifier);
    }
    Ok(verifiers)
}

/// The client authentication the provider's discovery allows: `private_key_jwt` only when it
/// lists that method (or lists none) and the algorithm (or lists none).
fn token_auth(
    cfg: &AuthLayerBuilder,
    meta: &crate::ProviderMetadata,
    provider: &crate::provider::Provider,
    client_id: &str,
    client_secret: Option<crate::Secret>,
) -> Result<TokenAuth, ConfigError> {
    let ClientAuth::PrivateKeyJwt { key, alg, kid } = &cfg.client_auth else {
        return Ok(TokenAuth::Secret {
            secret: client_secret.ok_or(ConfigError::Missing("client_secret"))?,
            method: ClientAuthMethod::choose(meta, provider.is_scalekit()),
        });
    };
    if let Some(methods) = &meta.token_endpoint_auth_methods_supported {
        if !methods.iter().any(|m| m == "private_key_jwt") {
            return Err(ConfigError::Metadata(format!(
                "client_auth is private_key_jwt, but the provider's \
                 token_endpoint_auth_methods_supported lists only {methods:?}; register the \
                 client for private_key_jwt, or use a client secret"
            )));
        }
    }
    let audience = match cfg.assertion_audience {
        AssertionAudience::Issuer => meta.issuer.clone(),
        _ => meta.token_endpoint.clone(),
    };
    let assertions = Assertions::new(key, *alg, kid.clone(), client_id.to_owned(), audience)?;
    if let Some(algs) = &meta.token_endpoint_auth_signing_alg_values_supported {
        if !algs.iter().any(|a| a == assertions.alg_name()) {
            return Err(ConfigError::Metadata(format!(
                "client_auth signs with {}, but the provider's \
                 token_endpoint_auth_signing_alg_values_supported lists only {algs:?}",
                assertions.alg_name()
            )));
        }
    }
    // Logout revokes the refresh token with the same assertion: a revocation endpoint that
    // cannot authenticate this client would leave every refresh token alive after logout.
    if meta.revocation_endpoint.is_some() {
        if let Some(methods) = &meta.revocation_endpoint_auth_methods_supported {
            if !methods.iter().any(|m| m == "private_key_jwt") {
                return Err(ConfigError::Metadata(format!(
                    "client_auth is private_key_jwt, but the provider's \
                     revocation_endpoint_auth_methods_supported lists only {methods:?}: logout \
                     could not revoke refresh tokens; register the client for private_key_jwt \
                     at the revocation endpoint too, or use a client secret"
                )));
            }
        }
        if let Some(algs) = &meta.revocation_endpoint_auth_signing_alg_values_supported {
            if !algs.iter().any(|a| a == assertions.alg_name()) {
                return Err(ConfigError::Metadata(format!(
                    "client_auth signs with {}, but the provider's \
                     revocation_endpoint_auth_signing_alg_values_supported lists only {algs:?}",
                    assertions.alg_name()
                )));
            }
        }
    }
    Ok(TokenAuth::PrivateKeyJwt(assertions))
}

/// Why a cookie key is not random bytes, if it is not. The checks look at the first 64 bytes,
/// which are all the cookie crate uses (a random tail does not hide a weak head), and then at
/// each half of them on its own: `cookie::Key` signs with bytes 0..32 and encrypts with bytes
/// 32..64, so a weak half is a weak key even beside a random one. On 64 random bytes, the
/// checks of the whole refuse with odds far below one in a billion, and those of the halves with
/// odds below one in a hundred million.
fn weakness(key: &[u8]) -> Option<String> {
    let k = &key[..key.len().min(64)];
    let whole = Limits {
        max_times: 8,
        text_32nds: 26,
        // A period of 57 leaves 7 pairs of bytes to be equal: odds 2^-56 for random bytes.
        max_period: 57,
    };
    if let Some(why) = weakness_in(k, &whole) {
        return Some(format!(
            "{why} in its first {} bytes{}",
            k.len(),
            hint(&why)
        ));
    }
    if k.len() < 64 {
        return None;
    }
    let half = Limits {
        max_times: 7,
        text_32nds: 29,
        max_period: 24,
    };
    if let Some(why) = typed(k) {
        return Some(format!(
            "{why}: it was typed, not made by a random generator"
        ));
    }
    for (range, role) in [(0..32, "signing"), (32..64, "encryption")] {
        if let Some(why) = weakness_in(&k[range.clone()], &half) {
            return Some(format!(
                "{why} in bytes {}..{}, its {role} half{}",
                range.start,
                range.end,
                hint(&why)
            ));
        }
    }
    None
}

/// Why the base64 text of a key's first 64 bytes (85 full characters, as `AUTH_COOKIE_KEY`
/// would hold them) looks typed, if it does: a phrase repeated, a sentence in few letters, or words
/// without a digit or symbol. The bytes of such a key can pass every check above (a phrase
/// repeated every 21 characters decodes to a period of 63 bytes). Odds of refusing random
/// bytes: below 10^-13 for each, and below 10^-12 for keys of single-case random letters and
/// digits (`pwgen -A`) decoded as base64.
fn typed(key: &[u8]) -> Option<&'static str> {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(key);
    // The last character holds only the last bits of the key (and zero bits): left out.
    let t = &text.as_bytes()[..text.len().saturating_sub(1)];
    let half = t.len() / 2;
    if (1..=half).any(|p| t.iter().zip(&t[p..]).all(|(a, b)| a == b)) {
        return Some("its base64 repeats a text");
    }
    let mut seen = [false; 256];
    for b in t {
        seen[usize::from(*b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    // 86 random base64 characters take about 48 different ones.
    if distinct < 20 {
        return Some("its base64 uses few characters, as a typed sentence does");
    }
    if t.iter().all(u8::is_ascii_alphabetic) && distinct < 32 {
        return Some("its base64 is words, without a digit or symbol");
    }
    None
}

/// What to do about text where bytes were expected.
fn hint(why: &str) -> &'static str {
    if why.starts_with("is text") {
        ": pass the decoded bytes of a random key, or set AUTH_COOKIE_KEY to its base64"
    } else {
        ""
    }
}

/// What random bytes almost never show, for a run of a given length.
struct Limits {
    /// The most times one byte value may appear.
    max_times: usize,
    /// How much text (printable ASCII or whitespace) is refused, in 32nds of the bytes.
    text_32nds: usize,
    /// The longest period looked for.
    max_period: usize,
}

fn weakness_in(k: &[u8], limits: &Limits) -> Option<String> {
    if k.len() < 2 {
        return None;
    }
    let mut counts = [0usize; 256];
    for b in k {
        counts[usize::from(*b)] += 1;
    }
    // Typed by hand or copied from an example: a few byte values, or one repeated. n random
    // bytes (n <= 64) take about 0.9 n different values.
    let distinct = counts.iter().filter(|c| **c > 0).count();
    if distinct < k.len() / 4 {
        return Some(format!(
            "is not random: only {distinct} different byte values"
        ));
    }
    let (most, times) = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| **c)
        .unwrap_or((0, &0));
    if *times > limits.max_times {
        return Some(format!(
            "is not random: the byte {most:#04x} appears {times} times"
        ));
    }
    // Text (a typed sentence, hex or base64 passed undecoded, a line read from a file): a
    // random byte is printable ASCII or whitespace about 39 % of the time.
    let text = k
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    if text * 32 >= k.len() * limits.text_32nds {
        return Some("is text, not random bytes".to_owned());
    }
    // A pattern: a block repeated, or counting in fixed steps.
    let periods = 1..=limits.max_period.min(k.len() - 1);
    if let Some(period) = periods
        .into_iter()
        .find(|p| k.iter().zip(&k[*p..]).all(|(a, b)| a == b))
    {
        return Some(format!(
            "is not random: its bytes repeat every {period} bytes"
        ));
    }
    let step = k[1].wrapping_sub(k[0]);
    if k.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step) {
        return Some(format!(
            "is not random: its bytes count up in steps of {step}"
        ));
    }
    None
}

/// The layer's revocation store, and whether instances sharing the session store share it.
struct Revocations {
    store: Arc<dyn crate::revocation::RevocationStore>,
    shared: bool,
}

/// With a session store that shares a revocation store, that one, together with a configured
/// one if any: a configured store need not be shared (each instance may have its own), and a
/// stored session ended on one instance must end on all of them. Without a store sharing one,
/// the configured one, or a store of this process (then stored sessions are not remembered
/// between requests, and each request reads its session from the store).
fn revocations_of(
    configured: Option<Arc<dyn crate::revocation::RevocationStore>>,
    sessions: Option<&Arc<dyn crate::session_store::SessionStore>>,
    clock: &crate::clock::SharedClock,
) -> Revocations {
    let of_store = sessions.and_then(|s| s.revocation_store());
    let store: Arc<dyn crate::revocation::RevocationStore> =
        match (configured.clone(), of_store.clone()) {
            (Some(own), Some(shared)) => Arc::new(crate::revocation::Both(own, shared)),
            (Some(store), _) | (None, Some(store)) => store,
            (None, None) => {
                if sessions.is_some() {
                    tracing::warn!(
                        "the session store shares no revocation store and none is configured: \
                     each request loads its session from the store. Configure a revocation \
                     store that every instance shares (`revocation_store`)"
                    );
                }
                Arc::new(MemoryRevocationStore::with_clock(clock.clone()))
            }
        };
    Revocations {
        store,
        shared: of_store.is_some() || configured.is_some(),
    }
}
