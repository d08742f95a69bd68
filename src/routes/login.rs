//! `GET /auth/login`: start the Authorization Code flow with state, nonce and PKCE S256.
//!
//! The login route is also the app's Scalekit **Initiate Login URL**: Scalekit sends the
//! browser here with `?idp_initiated_login=<JWT>` when a login starts at the identity provider,
//! after an invitation is accepted or a password reset (developer-docs
//! `src/content/docs/sso/guides/idp-init-sso.mdx`, `guides/dashboard/redirects.mdx`), or with
//! `?error=...&error_description=...` ("Error callback format" in the same page).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;
use http::StatusCode;
use sha2::{Digest, Sha256};

use super::{param, query_params, read_index, Transaction, TX_ID_LEN};
use crate::cookies::CookieCodec;
use crate::responses::{error_page, redirect, ErrorPage, ErrorReason, Page};
use crate::return_to;
use crate::same_origin::is_same_origin;
use crate::state::Shared;
use crate::token::random_token;

/// The login parameters a caller may pass through `/auth/login?...` to the provider. A
/// `domain_hint` is also sent as `domain` (as Scalekit's SDKs do); `domain` is not accepted on
/// its own.
const PASS_THROUGH: &[&str] = &[
    "prompt",
    "login_hint",
    "organization_id",
    "connection_id",
    "domain_hint",
    "provider",
];

/// Options for a link to the login route, built by
/// [`AuthLayer::login_url`](crate::AuthLayer::login_url). Each is sent to the provider as the
/// authorization parameter of the same name (`domain_hint` also as `domain`, as Scalekit's SDKs
/// do; `max_age` in seconds); `return_to` is where the browser lands after sign-in (a
/// same-origin path, or the default).
///
/// [`login_url`](crate::AuthLayer::login_url) seals the options with the app's cookie keys, so
/// the login route honours such a link from any site (an e-mail, another app): the options are
/// the app's own choice. The same parameters written as plain query parameters
/// (`/auth/login?organization_id=...`) are honoured only on requests from the app itself, so a
/// hand-made link on another site cannot choose the user's organization. One exception:
/// `prompt=none`, which chooses nothing and can only make a sign-in quieter (the
/// [`attempt_silent_login`](crate::AuthLayer::attempt_silent_login) layer sends it). A sealed
/// link that chooses a tenant or account, followed from another site by a signed-in browser,
/// first asks the user to confirm: anyone can get such a link for their own organization.
///
/// `max_age` and `acr_values` ask for a step-up: the callback then refuses an ID token whose
/// `auth_time` is older than `max_age` (or missing), or whose `acr` is not one of `acr_values`
/// (OpenID Connect Core 3.1.2.1). The [`require_recent_login`](crate::AuthLayer::require_recent_login)
/// and [`require_acr`](crate::AuthLayer::require_acr) guards build such links themselves.
///
/// ```
/// use std::time::Duration;
/// use tower_oidc_auth::LoginOptions;
/// // Organization switching: let a signed-in user pick another organization.
/// let switch = LoginOptions::new().organization_id("org_2").prompt("select_account");
/// // Step-up before a sensitive action: a sign-in no older than five minutes, with MFA.
/// let step_up = LoginOptions::new()
///     .max_age(Duration::from_secs(300))
///     .acr_values("mfa")
///     .return_to("/billing");
/// let mut sso = LoginOptions::default();
/// sso.connection_id = Some("conn_123".into());
/// # let _ = (switch, step_up, sso);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct LoginOptions {
    /// `organization_id`: sign in through this organization's connection (Scalekit).
    pub organization_id: Option<String>,
    /// `connection_id`: sign in through this SSO connection (Scalekit).
    pub connection_id: Option<String>,
    /// `login_hint`: the user's e-mail or login name, prefilled or used to route.
    pub login_hint: Option<String>,
    /// `domain_hint`: the domain whose organization's identity provider to use; sent as both
    /// `domain_hint` and `domain`.
    pub domain_hint: Option<String>,
    /// `provider`: a social login provider, e.g. `google` (Scalekit).
    pub provider: Option<String>,
    /// `prompt`: e.g. `login` (sign in again), `select_account` (choose another account or
    /// organization), `create` (sign up).
    pub prompt: Option<String>,
    /// Where to land after sign-in: a same-origin path such as `/settings?tab=2`.
    pub return_to: Option<String>,
    /// `max_age`: the sign-in must be no older than this (whole seconds, rounded down); the
    /// provider asks the user to authenticate again if theirs is older. The ID token must then
    /// carry `auth_time`.
    pub max_age: Option<Duration>,
    /// `acr_values`: space-separated authentication context classes, in order of preference;
    /// the ID token's `acr` must be one of them.
    pub acr_values: Option<String>,
}

impl LoginOptions {
    /// No options: a plain login that returns to the default path.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `organization_id`.
    pub fn organization_id(mut self, id: impl Into<String>) -> Self {
        self.organization_id = Some(id.into());
        self
    }

    /// Sets `connection_id`.
    pub fn connection_id(mut self, id: impl Into<String>) -> Self {
        self.connection_id = Some(id.into());
        self
    }

    /// Sets `login_hint`.
    pub fn login_hint(mut self, hint: impl Into<String>) -> Self {
        self.login_hint = Some(hint.into());
        self
    }

    /// Sets `domain_hint` (sent as `domain_hint` and `domain`).
    pub fn domain_hint(mut self, domain: impl Into<String>) -> Self {
        self.domain_hint = Some(domain.into());
        self
    }

    /// Sets `provider`.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Sets `prompt`.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Sets where to land after sign-in.
    pub fn return_to(mut self, path: impl Into<String>) -> Self {
        self.return_to = Some(path.into());
        self
    }

    /// Sets `max_age`: the sign-in must be no older than this.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_oidc_auth::LoginOptions;
    /// let recent = LoginOptions::new().max_age(Duration::from_secs(300));
    /// assert_eq!(recent.max_age, Some(Duration::from_secs(300)));
    /// ```
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Sets `acr_values` (space-separated; the ID token's `acr` must be one of them).
    ///
    /// ```
    /// use tower_oidc_auth::LoginOptions;
    /// let mfa = LoginOptions::new().acr_values("mfa");
    /// assert_eq!(mfa.acr_values.as_deref(), Some("mfa"));
    /// ```
    pub fn acr_values(mut self, values: impl Into<String>) -> Self {
        self.acr_values = Some(values.into());
        self
    }

    /// `<login_path>?options=<sealed>`, or the bare path without options.
    pub(crate) fn to_sealed_path(&self, codec: &CookieCodec, login_path: &str) -> String {
        let sealed = SealedOptions::from(self);
        if sealed == SealedOptions::default() {
            return login_path.to_owned();
        }
        let plain = serde_json::to_string(&sealed).unwrap_or_default();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(SEALED_PARAM, &codec.seal(SEAL_NAME, &plain))
            .finish();
        format!("{login_path}?{query}")
    }
}

/// The query parameter that carries sealed [`LoginOptions`].
pub(crate) const SEALED_PARAM: &str = "options";

/// The name sealed options are bound to (the AEAD's associated data). No cookie of the layer
/// has this name (theirs all start with the `oidc_` prefix), so a sealed cookie value never
/// opens as options, nor sealed options as a cookie.
const SEAL_NAME: &str = "login-options";

/// What a sealed login link carries.
///
/// No expiry: a link in an e-mail must keep working for as long as the e-mail is read. What it
/// carries is only what the app itself chose (a tenant, a connection, a prompt, a step-up, a
/// return path), never an identity or a permission: whoever follows it must still sign in at
/// the provider as themselves, and replaying it only starts that same sign-in again. It stays
/// valid as long as the cookie key that sealed it is configured; removing a key from the
/// rotation retires its links.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SealedOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    return_to: Option<String>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acr_values: Option<String>,
}

impl From<&LoginOptions> for SealedOptions {
    fn from(o: &LoginOptions) -> Self {
        Self {
            organization_id: o.organization_id.clone(),
            connection_id: o.connection_id.clone(),
            login_hint: o.login_hint.clone(),
            domain_hint: o.domain_hint.clone(),
            provider: o.provider.clone(),
            prompt: o.prompt.clone(),
            return_to: o.return_to.clone(),
            max_age: o.max_age.map(|d| d.as_secs()),
            acr_values: o.acr_values.clone(),
        }
    }
}

impl SealedOptions {
    /// Whether the options choose where or as whom to sign in (a tenant, a connection, a social
    /// provider, a login hint, an account chooser), not only how strictly.
    fn chooses_tenant(&self) -> bool {
        self.organization_id.is_some()
            || self.connection_id.is_some()
            || self.login_hint.is_some()
            || self.domain_hint.is_some()
            || self.provider.is_some()
            || self
                .prompt
                .as_deref()
                .is_some_and(|p| p.split(' ').any(|p| p == "select_account" || p == "create"))
    }

    /// Opens the `options` parameter of a login link: `None` unless it was sealed by this app
    /// (any of its cookie keys) as login options and holds them.
    fn open(codec: &CookieCodec, sealed: &str) -> Option<Self> {
        if sealed.is_empty() || sealed.len() > 4096 {
            return None;
        }
        let plain = codec.open(SEAL_NAME, sealed)?;
        serde_json::from_str(&plain).ok()
    }

    /// The pass-through parameters, in the order [`PASS_THROUGH`] names them.
    fn pass_through(self) -> Vec<(&'static str, String)> {
        [
            ("prompt", self.prompt),
            ("login_hint", self.login_hint),
            ("organization_id", self.organization_id),
            ("connection_id", self.connection_id),
            ("domain_hint", self.domain_hint),
            ("provider", self.provider),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| (name, v)))
        .collect()
    }
}

/// The step-up a login asks for: sent as `max_age` and `acr_values`, remembered in the
/// transaction, checked at the callback.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct StepUp {
    /// Seconds.
    pub(crate) max_age: Option<u64>,
    /// Space-separated.
    pub(crate) acr_values: Option<String>,
}

pub(crate) async fn login(shared: Arc<Shared>, parts: Parts) -> Page {
    let settings = &shared.settings;
    if let Some(there) = loopback_alias(&settings.origin, &parts) {
        return redirect(&there, Vec::new());
    }
    let params = match query_params(parts.uri.query()) {
        Ok(p) => p,
        Err(reason) => {
            let page = ErrorPage::new(
                StatusCode::BAD_REQUEST,
                ErrorReason::BadLoginRequest,
                "Bad login request",
                reason,
                Some(&settings.login_path),
            );
            return error_page(
                &*shared.responses,
                &shared.settings.default_return,
                &page,
                Vec::new(),
            );
        }
    };
    // The provider reports a failure here instead of starting a login (idp-init-sso.mdx,
    // "Error callback format"). Its words are logged, never shown: anyone can put any text in
    // a link to this route.
    if let Some(error) = param(&params, "error") {
        let description = param(&params, "error_description").unwrap_or("");
        tracing::warn!(
            error = ?truncate(error, 64),
            description = ?truncate(description, 256),
            "the provider reported an error to the login route"
        );
        let (status, message) = match error {
            "access_denied" => (
                StatusCode::FORBIDDEN,
                "You cancelled the sign-in, or the identity provider did not allow it.",
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "The identity provider could not complete the sign-in.",
            ),
        };
        let page = ErrorPage {
            provider_error: Some(error),
            // Logged above, never shown: anyone can put any text in a link to this route.
            provider_error_description: None,
            ..ErrorPage::new(
                status,
                ErrorReason::ProviderError,
                crate::responses::provider_error_title(error),
                message,
                Some(&settings.login_path),
            )
        };
        return error_page(
            &*shared.responses,
            &shared.settings.default_return,
            &page,
            Vec::new(),
        );
    }

    // What the login asks the provider for: either the claims of a Scalekit IdP-initiated
    // login token, or plain parameters from the app's own pages.
    let mut requested: Vec<(&'static str, String)> = Vec::new();
    let mut step_up = StepUp::default();
    let return_to;
    match param(&params, "idp_initiated_login").filter(|t| !t.is_empty()) {
        Some(token) => {
            // Signed by the provider, so honoured from any site: it is how Scalekit starts
            // the login. The token is the whole request: plain parameters beside it are
            // ignored, and `relay_state` is only a return target, sanitised like `return_to`.
            let login = match shared.verifier.idp_initiated_login(token).await {
                Ok(login) => login,
                Err(error) => {
                    tracing::warn!(%error, "IdP-initiated login token refused");
                    let page = ErrorPage::new(
                        StatusCode::BAD_REQUEST,
                        ErrorReason::InvalidIdpLogin,
                        "Sign-in link not valid",
                        "This sign-in link is not valid or has expired. Start again from your \
                         identity provider, or sign in here.",
                        Some(&settings.login_path),
                    );
                    return error_page(
                        &*shared.responses,
                        &shared.settings.default_return,
                        &page,
                        Vec::new(),
                    );
                }
            };
            // Login CSRF: anyone can obtain such a token for an organization whose identity
            // provider they control, and send it to a victim. A browser without a session is
            // in the same place as with any IdP-initiated SSO; a signed-in user is asked before
            // a link from another site replaces their session.
            if !is_same_origin(&parts.headers, &settings.origin)
                && crate::session::has_session(&shared, &parts.headers)
            {
                tracing::debug!("cross-site IdP-initiated login over a session: asking first");
                return crate::responses::confirm_login(
                    &*shared.responses,
                    &settings.login_path,
                    ("idp_initiated_login", token),
                    &settings.default_return,
                );
            }
            return_to = login
                .relay_state
                .as_deref()
                .and_then(return_to::sanitize)
                .unwrap_or(&settings.default_return)
                .to_owned();
            for (name, value) in [
                ("organization_id", login.organization_id),
                ("connection_id", login.connection_id),
                ("login_hint", login.login_hint),
            ] {
                if let Some(v) = value {
                    requested.push((name, v));
                }
            }
        }
        None if param(&params, SEALED_PARAM).is_some() => {
            // Sealed by `AuthLayer::login_url` with the app's keys: the app's own choice, so
            // honoured from any site. Like the IdP-initiated token, it is the whole request:
            // plain parameters beside it are ignored.
            let sealed = param(&params, SEALED_PARAM).unwrap_or("");
            let Some(options) = SealedOptions::open(&shared.cookies, sealed) else {
                tracing::warn!("login link refused: its options are not sealed by this app");
                let page = ErrorPage::new(
                    StatusCode::BAD_REQUEST,
                    ErrorReason::BadLoginRequest,
                    "Sign-in link not valid",
                    "This sign-in link is damaged or was not made by this application. Sign \
                     in here, or ask for a new link.",
                    Some(&settings.login_path),
                );
                return error_page(
                    &*shared.responses,
                    &shared.settings.default_return,
                    &page,
                    Vec::new(),
                );
            };
            // Login CSRF again: anyone can get a sealed link the app made for them (switching to
            // their own organization, say) and send it to a victim. Options that choose a tenant
            // or an account replace a signed-in user's session only after asking; step-up
            // options only make a sign-in stricter and pass.
            if options.chooses_tenant()
                && !is_same_origin(&parts.headers, &settings.origin)
                && crate::session::has_session(&shared, &parts.headers)
            {
                tracing::debug!("cross-site login link choosing a tenant over a session: asking");
                return crate::responses::confirm_login(
                    &*shared.responses,
                    &settings.login_path,
                    (SEALED_PARAM, sealed),
                    &settings.default_return,
                );
            }
            return_to = options
                .return_to
                .as_deref()
                .and_then(return_to::sanitize)
                .unwrap_or(&settings.default_return)
                .to_owned();
            step_up = StepUp {
                max_age: options.max_age,
                acr_values: options.acr_values.clone(),
            };
            requested = options.pass_through();
        }
        None => {
            return_to = param(&params, "return_to")
                .and_then(return_to::sanitize)
                .unwrap_or(&settings.default_return)
                .to_owned();
            // Pass-through parameters choose the tenant or connection: a cross-site link must
            // not choose for the user (login CSRF into an attacker's organization). Only
            // requests from the app itself carry them.
            let same_origin = is_same_origin(&parts.headers, &settings.origin);
            for name in PASS_THROUGH {
                let Some(v) = param(&params, name) else {
                    continue;
                };
                // `prompt=none` (a silent login, as the silent-login layer starts it) is
                // honoured from anywhere: it chooses no tenant and can only make a login
                // quieter.
                let silent = *name == "prompt" && v == "none";
                if !same_origin && !silent {
                    tracing::debug!(
                        param = name,
                        "cross-site login: pass-through parameter dropped"
                    );
                    continue;
                }
                requested.push((name, v.to_owned()));
            }
            if same_origin {
                step_up = StepUp {
                    max_age: param(&params, "max_age").and_then(|v| v.parse().ok()),
                    acr_values: param(&params, "acr_values").map(str::to_owned),
                };
            }
        }
    }
    start(&shared, &parts, &requested, &step_up, return_to)
}

/// At most `max` bytes of `s`, cut at a character boundary (for logs).
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Redirects to the provider's authorization endpoint with fresh state, nonce and PKCE, the
/// `requested` parameters the app approves and the step-up asked for; remembers the attempt
/// (with the step-up it must check) in its transaction cookie.
fn start(
    shared: &Shared,
    parts: &Parts,
    requested: &[(&'static str, String)],
    step_up: &StepUp,
    return_to: String,
) -> Page {
    let settings = &shared.settings;
    let codec = &shared.cookies;
    let state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let now = shared.clock.now();
    // The step-up is not put to `approve_authorize_param`: a guard that asked for it would
    // send the user back here for ever if it were dropped. Only a usable `acr_values` is sent,
    // and only what is sent is checked at the callback.
    let acr_values = step_up
        .acr_values
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 512 && !v.chars().any(char::is_control))
        .map(str::to_owned);

    let mut silent = false;
    let mut authorize = match url::Url::parse(&shared.meta.authorization_endpoint) {
        Ok(u) => u,
        Err(_) => {
            let page = ErrorPage::new(
                StatusCode::BAD_GATEWAY,
                ErrorReason::AuthorizationEndpointUnusable,
                "Sign-in unavailable",
                "The identity provider's login address is not usable.",
                None,
            );
            return error_page(
                &*shared.responses,
                &shared.settings.default_return,
                &page,
                Vec::new(),
            );
        }
    };
    {
        let mut q = authorize.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", &settings.redirect_url)
            .append_pair("scope", &settings.scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in &settings.authorize_params {
            q.append_pair(k, v);
        }
        for (name, v) in requested {
            if v.is_empty() || v.len() > 512 || v.chars().any(char::is_control) {
                continue;
            }
            if let Some(approve) = &settings.approve_param {
                if !(approve.0)(name, v) {
                    tracing::debug!(
                        param = name,
                        "authorization parameter not approved; dropped"
                    );
                    continue;
                }
            }
            q.append_pair(name, v);
            silent |= *name == "prompt" && v == "none";
            // Scalekit's SDKs send a domain hint under both names (scalekit-sdk-node
            // `src/scalekit.ts` and scalekit-sdk-go `scalekit.go` `GetAuthorizationUrl`,
            // scalekit-sdk-java `ScalekitAuthClient.getAuthorizationUrl`); the SSO reference
            // documents only `domain`.
            if *name == "domain_hint" {
                q.append_pair("domain", v);
            }
        }
        if let Some(max_age) = step_up.max_age {
            q.append_pair("max_age", &max_age.to_string());
        }
        if let Some(acr) = &acr_values {
            q.append_pair("acr_values", acr);
        }
    }

    // One cookie per attempt, so logins started in several tabs all complete; the index lets
    // us drop the oldest when too many pile up.
    let cookies = codec.read(&parts.headers);
    let mut index = read_index(shared, &cookies);
    let id = state[..TX_ID_LEN].to_owned();
    let mut set_cookies = Vec::new();
    index.0.push((id.clone(), now));
    while index.0.len() > settings.max_login_attempts {
        let (old, _) = index.0.remove(0);
        set_cookies.push(codec.clear(&format!("{}{old}", codec.tx_prefix), &codec.tx_path));
    }
    let tx = Transaction {
        state,
        nonce,
        verifier,
        return_to,
        created: now,
        max_age: step_up.max_age,
        acr_values,
        silent,
    };
    let tx_slot = crate::cookies::Slot {
        name: format!("{}{id}", codec.tx_prefix),
        path: codec.tx_path.clone(),
    };
    // Both are small (a return path checked against the request, a few ids): within the limit.
    let _ = codec.write_json(&tx_slot, &tx, settings.login_timeout, 1, &mut set_cookies);
    let _ = codec.write_json(
        &codec.tx_index,
        &index,
        settings.login_timeout,
        cookies.chunk_count(&codec.tx_index.name),
        &mut set_cookies,
    );
    redirect(authorize.as_str(), set_cookies)
}

/// A login asked for on another loopback name than the redirect URL's (`localhost` against
/// `127.0.0.1`, another port): the same path and query on the redirect URL's origin. Otherwise
/// the transaction cookie would be set for one host and the callback come back to the other,
/// and the first sign-in would fail as expired. Only between loopback origins: behind a proxy
/// the `Host` header may name an inner host, and sending that browser anywhere would loop.
fn loopback_alias(origin: &str, parts: &Parts) -> Option<String> {
    // Through a proxy (a dev server forwarding to the app), the `Host` the app sees is not the
    // one the browser used: moving the browser would send it through the proxy again, forever.
    let proxied = ["x-forwarded-host", "forwarded", "x-forwarded-for", "via"]
        .iter()
        .any(|name| parts.headers.contains_key(*name));
    if proxied {
        return None;
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))?;
    let ours = url::Url::parse(origin).ok()?;
    let asked = url::Url::parse(&format!("{}://{host}", ours.scheme())).ok()?;
    let loopback = |u: &url::Url| match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !loopback(&ours) || !loopback(&asked) || asked.origin() == ours.origin() {
        return None;
    }
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(|| {
        tracing::info!(
            asked = %asked.origin().ascii_serialization(),
            redirect_origin = %origin,
            "login asked for on another loopback name than the redirect URL's: sending the \
             browser there first, so the sign-in cookie and the callback share one host"
        );
    });
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    Some(format!("{origin}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cookie::Key;

    fn codec(key: u8) -> CookieCodec {
        CookieCodec::new(vec![Key::from(&[key; 64])], true, "oidc_test", "/", "/auth")
    }

    /// The sealed value of a `login_url` link.
    fn sealed_of(link: &str) -> String {
        let query = link.split_once('?').expect("a query").1;
        let params = query_params(Some(query)).unwrap();
        param(&params, SEALED_PARAM).expect("options").to_owned()
    }

    #[test]
    fn sealed_options_round_trip() {
        let c = codec(1);
        let options = LoginOptions::new()
            .organization_id("org_1")
            .connection_id("conn_1")
            .login_hint("ada@example.com")
            .domain_hint("example.com")
            .provider("google")
            .prompt("login")
            .return_to("/a?b=c")
            .max_age(Duration::from_millis(90_500))
            .acr_values("mfa hwk");
        let link = options.to_sealed_path(&c, "/auth/login");
        assert!(link.starts_with("/auth/login?options="), "{link}");
        let opened = SealedOptions::open(&c, &sealed_of(&link)).unwrap();
        assert_eq!(opened, SealedOptions::from(&options));
        assert_eq!(opened.max_age, Some(90), "whole seconds");
        assert_eq!(
            opened.pass_through(),
            vec![
                ("prompt", "login".to_owned()),
                ("login_hint", "ada@example.com".to_owned()),
                ("organization_id", "org_1".to_owned()),
                ("connection_id", "conn_1".to_owned()),
                ("domain_hint", "example.com".to_owned()),
                ("provider", "google".to_owned()),
            ]
        );
        assert_eq!(
            LoginOptions::new().to_sealed_path(&c, "/auth/login"),
            "/auth/login"
        );
    }

    #[test]
    fn the_sealed_parameter_refuses_what_this_app_did_not_seal_as_options() {
        let c = codec(1);
        let good = sealed_of(&LoginOptions::new().prompt("login").to_sealed_path(&c, "/l"));
        assert!(SealedOptions::open(&c, &good).is_some());

        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let refused = [
            String::new(),
            "not base64 at all!".to_owned(),
            "AAAA".to_owned(),
            good[..good.len() / 2].to_owned(),
            flipped,
            format!("{good}AAAA"),
            "A".repeat(5000),
            // Sealed by another app's key.
            sealed_of(
                &LoginOptions::new()
                    .prompt("login")
                    .to_sealed_path(&codec(2), "/l"),
            ),
            // Sealed under another name (a cookie of the layer): never options.
            c.seal(&c.session.name, r#"{"prompt":"login"}"#),
            c.seal(&format!("{}abc", c.tx_prefix), r#"{"prompt":"login"}"#),
            // Sealed as options, but not options.
            c.seal(SEAL_NAME, "not json"),
            c.seal(SEAL_NAME, "[1,2]"),
            c.seal(SEAL_NAME, r#"{"max_age":"300"}"#),
            c.seal(SEAL_NAME, r#"{"max_age":-1}"#),
            c.seal(SEAL_NAME, r#"{"prompt":7}"#),
        ];
        for sealed in &refused {
            assert!(SealedOptions::open(&c, sealed).is_none(), "{sealed:?}");
        }
        // And options never open as a cookie.
        assert!(c.open(&c.session.name, &good).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// No string opens as options unless this app sealed it (and nothing panics).
        #[test]
        fn arbitrary_strings_never_open(sealed in proptest::prelude::any::<String>()) {
            proptest::prop_assert!(SealedOptions::open(&codec(1), &sealed).is_none());
        }

        /// Any change of one character of a sealed value is refused.
        #[test]
        fn any_one_character_change_is_refused(at in 0usize..10_000, to in "[A-Za-z0-9+/=]") {
            let c = codec(1);
            let good = sealed_of(&LoginOptions::new().prompt("login").to_sealed_path(&c, "/l"));
            let at = at % good.len();
            let mut changed = good.clone();
            changed.replace_range(at..=at, &to);
            proptest::prop_assume!(changed != good);
            proptest::prop_assert!(SealedOptions::open(&c, &changed).is_none());
        }
    }

    #[test]
    fn any_configured_key_opens_sealed_options() {
        let old = codec(1);
        let link = LoginOptions::new()
            .prompt("login")
            .to_sealed_path(&old, "/l");
        let rotated = CookieCodec::new(
            vec![Key::from(&[3u8; 64]), Key::from(&[1u8; 64])],
            true,
            "oidc_test",
            "/",
            "/auth",
        );
        assert!(SealedOptions::open(&rotated, &sealed_of(&link)).is_some());
    }
}
