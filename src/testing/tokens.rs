//! Tokens, signatures and session cookies a test can ask the provider for.

use serde_json::{json, Value};

use super::provider::TestProvider;
use super::state::{Authn, RefreshGrant, SigningKey, SsoSession};
use super::user::{IdpInitiatedLogin, TestUser};
use crate::AuthLayer;

impl TestProvider {
    /// A valid back-channel logout token for `client_id`, naming `sub` and `sid`.
    #[must_use]
    pub fn logout_token(&self, client_id: &str, sub: &str, sid: &str) -> String {
        self.state.logout_token(client_id, sub, sid)
    }

    /// Ends every single sign-on session of `sub` at the provider, as an administrator would,
    /// delivering back-channel logout tokens to the clients involved. Returns when done.
    pub async fn end_sessions_of(&self, sub: &str) {
        let ended: Vec<SsoSession> = {
            let mut sso = self.state.sso.lock().expect("sso lock");
            let keys: Vec<String> = sso
                .iter()
                .filter(|(_, s)| s.user.sub == sub)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter().filter_map(|k| sso.remove(&k)).collect()
        };
        for session in ended {
            self.state.end_sso(session).await;
        }
    }

    /// The `kid` of the current signing key.
    #[must_use]
    pub fn current_kid(&self) -> String {
        self.state.current_key().kid.clone()
    }

    /// Signs any claims with the current key (RS256, with its `kid`).
    #[must_use]
    pub fn sign(&self, claims: &Value) -> String {
        self.state.sign(claims)
    }

    /// Signs with the current key but the given JOSE header: for testing what the layer
    /// refuses (unknown `kid`, other `alg`, odd `typ`).
    #[must_use]
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.state.current_key().sign(header, claims)
    }

    /// The claims of an IdP-initiated login token as Scalekit issues them, at the provider's
    /// clock: `iat` = `nbf` = now and `exp` five minutes later (the docs' example,
    /// developer-docs `sso/guides/idp-init-sso.mdx` "JWT token structure", has
    /// `exp - iat = 300` and `nbf = iat`), `iss` the issuer, and the given claims. For tests
    /// that change a claim and sign the result with [`sign`](Self::sign).
    #[must_use]
    pub fn idp_initiated_login_claims(&self, login: &IdpInitiatedLogin) -> Value {
        let now = self.state.clock.now();
        let mut claims = json!({"iss": self.issuer(), "iat": now, "nbf": now, "exp": now + 300});
        for (name, value) in [
            ("organization_id", &login.organization_id),
            ("connection_id", &login.connection_id),
            ("login_hint", &login.login_hint),
            ("relay_state", &login.relay_state),
        ] {
            if let Some(v) = value {
                claims[name] = v.clone().into();
            }
        }
        claims
    }

    /// An IdP-initiated login token (the value of Scalekit's `idp_initiated_login` parameter),
    /// signed with the current key like every token of the environment.
    #[must_use]
    pub fn idp_initiated_login_token(&self, login: &IdpInitiatedLogin) -> String {
        self.sign(&self.idp_initiated_login_claims(login))
    }

    /// Where Scalekit sends the browser when a login starts at the identity provider (or after
    /// an invitation or a password reset): the app's Initiate Login URL (absolute, or a path
    /// such as `/auth/login`) with `?idp_initiated_login=<signed JWT>` (developer-docs
    /// `sso/guides/idp-init-sso.mdx`, "Endpoint setup").
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_oidc_auth::testing::{IdpInitiatedLogin, TestProvider};
    /// let provider = TestProvider::start().await;
    /// let url = provider.idp_initiated_login_url(
    ///     "/auth/login",
    ///     &IdpInitiatedLogin::new().organization_id("org_1").relay_state("/welcome"),
    /// );
    /// assert!(url.starts_with("/auth/login?idp_initiated_login=ey"));
    /// # }
    /// ```
    #[must_use]
    pub fn idp_initiated_login_url(
        &self,
        app_login_url: &str,
        login: &IdpInitiatedLogin,
    ) -> String {
        let token = self.idp_initiated_login_token(login);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("idp_initiated_login", &token)
            .finish();
        let separator = if app_login_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{app_login_url}{separator}{query}")
    }

    /// Signs with a freshly generated RSA key that the provider never publishes, under the
    /// given JOSE header (name the current `kid` to impersonate the published key, or any
    /// other): for testing what the layer refuses.
    #[must_use]
    pub fn sign_with_unpublished_key(&self, header: &Value, claims: &Value) -> String {
        SigningKey::generate("unpublished".into()).sign(header, claims)
    }

    /// An access token for `user`, as the token endpoint would issue it.
    #[must_use]
    pub fn access_token(&self, user: &TestUser) -> String {
        self.state.access_token(
            &self.state.client_id,
            user,
            "openid profile email offline_access",
            "sid-test",
        )
    }

    /// An access token for `user` issued for a protected resource (an MCP server, an API), as
    /// an authorization server issues it to a client that asked for it with RFC 8707's
    /// `resource` parameter: `aud` is the resource, `scope` the granted scopes
    /// (space-separated), `client_id` the provider's client; one hour of lifetime. Scalekit's
    /// MCP tokens are checked this way: the environment's issuer and keys, `aud` = the MCP
    /// server's URL (scalekit-inc/fastmcp, `src/fastmcp/server/auth/providers/scalekit.py`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_oidc_auth::testing::{TestProvider, TestUser};
    /// let provider = TestProvider::start().await;
    /// let token = provider.resource_access_token(
    ///     &TestUser::new("usr_1"),
    ///     "http://127.0.0.1:3000/mcp",
    ///     &["notes:read"],
    /// );
    /// # let _ = token;
    /// # }
    /// ```
    #[must_use]
    pub fn resource_access_token(
        &self,
        user: &TestUser,
        resource: &str,
        scopes: &[&str],
    ) -> String {
        let now = self.state.clock.now();
        let mut claims = serde_json::Map::new();
        for (k, v) in &user.extra {
            claims.insert(k.clone(), v.clone());
        }
        if let Value::Object(base) = json!({
            "iss": self.state.issuer, "sub": user.sub, "aud": [resource],
            "client_id": self.state.client_id, "scope": scopes.join(" "),
            "iat": now, "nbf": now, "exp": now + 3600,
            "jti": crate::token::random_token(),
            "roles": user.roles, "permissions": user.permissions,
        }) {
            claims.extend(base);
        }
        self.state.sign(&Value::Object(claims))
    }

    /// A machine-to-machine access token, as Scalekit issues one to an API client of
    /// `organization_id` by the client-credentials grant: no `aud`, `sub` and `client_id` both
    /// `client_id`, the granted scopes in a `scopes` array, a one-hour lifetime (developer-docs
    /// `authenticate/m2m/api-auth-quickstart.mdx`, step 6 "Example decoded access token", and
    /// step 2: `expiry` defaults to 3600 s). Signed with the current key. A layer accepts it as a
    /// bearer token only with
    /// [`AuthLayerBuilder::accept_m2m_clients`](crate::AuthLayerBuilder::accept_m2m_clients).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_oidc_auth::M2mClients;
    /// let provider = tower_oidc_auth::testing::TestProvider::start().await;
    /// let auth = provider
    ///     .layer_builder("http://127.0.0.1:3000/auth/callback")
    ///     .accept_m2m_clients(M2mClients::only(["m2morg_1"]))
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// let token = provider.m2m_access_token("m2morg_1", "org_1", &["deploy:applications"]);
    /// # let _ = (auth, token);
    /// # }
    /// ```
    #[must_use]
    pub fn m2m_access_token(
        &self,
        client_id: &str,
        organization_id: &str,
        scopes: &[&str],
    ) -> String {
        let now = self.state.clock.now();
        self.state.sign(&json!({
            "client_id": client_id,
            "exp": now + 3600,
            "iat": now,
            "iss": self.state.issuer,
            "jti": format!("tkn_{}", crate::token::random_token()),
            "nbf": now,
            "oid": organization_id,
            "scopes": scopes,
            "sub": client_id,
        }))
    }

    /// An ID token for `user` (with this nonce), as the token endpoint would issue it.
    #[must_use]
    pub fn id_token(&self, user: &TestUser, nonce: Option<&str>) -> String {
        let at = self.access_token(user);
        let authn = Authn::now(&self.state.clock, None);
        self.state
            .id_token(&self.state.client_id, user, nonce, "sid-test", &at, &authn)
    }

    /// A `Cookie` header value holding a signed-in session of `user` for `auth`, as if they had
    /// logged in: for handler tests that need no login dance. The layer must trust this
    /// provider (built from [`layer_builder`](Self::layer_builder) or pointed at its issuer).
    #[must_use]
    pub fn session_cookie(&self, auth: &AuthLayer, user: &TestUser) -> String {
        let (at, refresh, id) = self.session_tokens(auth, user);
        crate::session::session_cookie_header(&auth.shared, at, Some(refresh), &id)
    }

    /// As [`session_cookie`](Self::session_cookie), for a layer with a session store: the
    /// session is saved in the store and the header holds its reference cookie. An error when
    /// the layer has no store or the store fails.
    pub async fn stored_session_cookie(
        &self,
        auth: &AuthLayer,
        user: &TestUser,
    ) -> Result<String, crate::session_store::SessionStoreError> {
        let (at, refresh, id) = self.session_tokens(auth, user);
        crate::session::stored_session_cookie_header(&auth.shared, at, Some(refresh), &id).await
    }

    fn session_tokens(&self, auth: &AuthLayer, user: &TestUser) -> (String, String, String) {
        let client = auth.shared.settings.client_id.clone();
        let at = self.state.access_token(
            &client,
            user,
            "openid profile email offline_access",
            "sid-test",
        );
        let authn = Authn::now(&self.state.clock, None);
        let id = self
            .state
            .id_token(&client, user, None, "sid-test", &at, &authn);
        let refresh = crate::token::random_token();
        self.state.refresh.lock().expect("refresh lock").insert(
            refresh.clone(),
            RefreshGrant {
                client,
                user: user.clone(),
                scope: "openid profile email offline_access".into(),
                sid: "sid-test".into(),
                family: refresh.clone(),
                active: true,
                authn,
            },
        );
        (at, refresh, id)
    }

    /// A `Cookie` header value holding a session made of exactly these tokens, sealed for
    /// `auth`: for testing what the layer does with tokens it would not get from a real login
    /// (expired, foreign, forged).
    #[must_use]
    pub fn session_cookie_with_tokens(
        &self,
        auth: &AuthLayer,
        access_token: &str,
        refresh_token: Option<&str>,
        id_token: &str,
    ) -> String {
        crate::session::session_cookie_header(
            &auth.shared,
            access_token.to_owned(),
            refresh_token.map(str::to_owned),
            id_token,
        )
    }
}
