//! Options of a link to the login route ([`LoginOptions`]), sealed by
//! [`AuthLayer::login_url`](crate::AuthLayer::login_url) so that the login route can trust them
//! from any site, and the step-up a login asks for.

use std::time::Duration;

use crate::cookies::CookieCodec;
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
            .append_pair(SEALED_PARAM, &codec.seal(&seal_name(codec), &plain))
            .finish();
        format!("{login_path}?{query}")
    }
}

/// The query parameter that carries sealed [`LoginOptions`].
pub(crate) const SEALED_PARAM: &str = "options";

/// The name sealed options are bound to (the AEAD's associated data): this app's, through its
/// session cookie's name (which is made from its client id), so another app sharing the cookie
/// keys (a multi-app server) never honours this app's links. It has a space, which no cookie
/// name has, so a sealed cookie value never opens as options, nor sealed options as a cookie.
fn seal_name(codec: &CookieCodec) -> String {
    format!("login-options {}", codec.session.name)
}

/// What a sealed login link carries.
///
/// No expiry: a link in an e-mail must keep working for as long as the e-mail is read. What it
/// carries is only what the app itself chose (a tenant, a connection, a prompt, a step-up, a
/// return path), never an identity or a permission: whoever follows it must still sign in at
/// the provider as themselves, and replaying it only starts that same sign-in again. It stays
/// valid as long as the cookie key that sealed it is configured; removing a key from the
/// rotation retires its links.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct SealedOptions {
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
    pub(super) return_to: Option<String>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) max_age: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) acr_values: Option<String>,
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
    pub(super) fn chooses_tenant(&self) -> bool {
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
    pub(super) fn open(codec: &CookieCodec, sealed: &str) -> Option<Self> {
        if sealed.is_empty() || sealed.len() > 4096 {
            return None;
        }
        let plain = codec.open(&seal_name(codec), sealed)?;
        serde_json::from_str(&plain).ok()
    }

    /// The pass-through parameters, in the order [`PASS_THROUGH`] names them.
    pub(super) fn pass_through(self) -> Vec<(&'static str, String)> {
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

#[cfg(test)]
mod tests {
    use super::super::{param, query_params};
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
            c.seal(&seal_name(&c), "not json"),
            c.seal(&seal_name(&c), "[1,2]"),
            c.seal(&seal_name(&c), r#"{"max_age":"300"}"#),
            c.seal(&seal_name(&c), r#"{"max_age":-1}"#),
            c.seal(&seal_name(&c), r#"{"prompt":7}"#),
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
