//! Protected-resource mode: an API or MCP server that accepts only bearer tokens issued for it
//! (OAuth 2.0 Protected Resource Metadata, RFC 9728; bearer challenges, RFC 6750).
//!
//! [`ResourceServer`] configures it ([`AuthLayerBuilder::resource_server`]); the layer then
//! serves the metadata document, answers every 401 with a challenge naming it, requires `aud`
//! to contain the resource, and serves no login routes and sets no cookies.
//!
//! [`AuthLayerBuilder::resource_server`]: crate::AuthLayerBuilder::resource_server

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::config::error::ConfigError;
use crate::refusal::Refusal;
use crate::responses::{
    Client, ConfirmContext, ErrorPage, ForbiddenContext, InvalidTokenContext, Page, Responses,
    StepUpContext, UnauthenticatedContext, UnavailableContext, INVALID_TOKEN_CHALLENGE,
};

/// The well-known path of RFC 9728, section 3.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// How long clients may cache the metadata document.
const METADATA_MAX_AGE: &str = "public, max-age=300";

/// An API or MCP server protected by bearer tokens (RFC 9728): what it is, and what clients
/// need to get a token for it. Given to
/// [`AuthLayerBuilder::resource_server`](crate::AuthLayerBuilder::resource_server).
///
/// ```
/// use tower_oidc_auth::ResourceServer;
/// let mcp = ResourceServer::new("https://mcp.example.com/mcp")
///     .scopes_supported(["todo:read", "todo:write"])
///     .resource_name("Todo MCP server");
/// # let _ = mcp;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ResourceServer {
    pub(crate) resource: String,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) authorization_servers: Option<Vec<String>>,
    pub(crate) resource_name: Option<String>,
    pub(crate) resource_documentation: Option<String>,
    pub(crate) cors: bool,
}

impl ResourceServer {
    /// The resource identifier: the server's public URL (https, or http on loopback hosts; no
    /// query, no fragment), such as `https://mcp.example.com/mcp`. Tokens must name it in
    /// `aud` (RFC 8707's resource indicator, as MCP clients request it).
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            scopes_supported: Vec::new(),
            authorization_servers: None,
            resource_name: None,
            resource_documentation: None,
            cors: true,
        }
    }

    /// The scopes clients may request for this resource (`scopes_supported`).
    pub fn scopes_supported<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The authorization servers the document names (`authorization_servers`). Default: the
    /// provider's issuer and every [trusted issuer](crate::AuthLayerBuilder::trust_issuer).
    /// Scalekit names an MCP server's own authorization server,
    /// `<environment URL>/resources/<resource id>`, while its tokens carry the environment's
    /// issuer: set it here.
    pub fn authorization_servers<I, T>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.authorization_servers = Some(servers.into_iter().map(Into::into).collect());
        self
    }

    /// A human-readable name of the resource (`resource_name`).
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// A page of documentation for developers (`resource_documentation`).
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// Whether the layer makes its answers readable cross-origin (default: on). On, it answers
    /// CORS preflight requests itself and adds `Access-Control-Allow-Origin: *` to every
    /// answer, exposing `WWW-Authenticate`: MCP clients run in browsers on other origins.
    /// Credentials are never allowed (`*` forbids them): access takes a bearer token, which a
    /// browser never sends on its own. Off, leave CORS to the app (such as tower-http's
    /// `CorsLayer` outside this layer).
    pub fn cors(mut self, on: bool) -> Self {
        self.cors = on;
        self
    }
}

/// What the layer does in resource mode, resolved at build.
#[derive(Debug)]
pub(crate) struct ResourceSettings {
    /// The paths the metadata document is served at: RFC 9728's (the well-known path before the
    /// resource's path), and the bare well-known path that MCP clients of earlier revisions and
    /// Scalekit's guides fetch.
    paths: Vec<String>,
    /// The document, serialized once.
    document: Bytes,
    pub(crate) cors: bool,
    /// `Bearer realm="OAuth", resource_metadata="..."`.
    challenge: HeaderValue,
    /// The same with `error="invalid_token"`.
    invalid: HeaderValue,
    /// The metadata URL, quoted-string-safe.
    metadata_url: String,
}

impl ResourceSettings {
    /// Checks the resource identifier and makes the document, naming `servers` unless the
    /// configuration names its own.
    pub(crate) fn new(rs: &ResourceServer, servers: Vec<String>) -> Result<Self, ConfigError> {
        let url = check_resource(&rs.resource)?;
        let path = url.path().trim_end_matches('/');
        let mut paths = vec![format!("{WELL_KNOWN}{path}")];
        if !path.is_empty() {
            paths.push(WELL_KNOWN.to_owned());
        }
        let metadata_url = format!("{}{}", url.origin().ascii_serialization(), paths[0]);
        let mut doc = serde_json::Map::new();
        doc.insert("resource".into(), rs.resource.clone().into());
        let servers = rs.authorization_servers.clone().unwrap_or(servers);
        doc.insert("authorization_servers".into(), servers.into());
        if !rs.scopes_supported.is_empty() {
            doc.insert(
                "scopes_supported".into(),
                rs.scopes_supported.clone().into(),
            );
        }
        doc.insert("bearer_methods_supported".into(), vec!["header"].into());
        if let Some(name) = &rs.resource_name {
            doc.insert("resource_name".into(), name.clone().into());
        }
        if let Some(docs) = &rs.resource_documentation {
            doc.insert("resource_documentation".into(), docs.clone().into());
        }
        let document = Bytes::from(serde_json::Value::Object(doc).to_string());
        let header = |extra: &str| {
            HeaderValue::from_str(&format!(
                "Bearer realm=\"OAuth\", {extra}resource_metadata=\"{metadata_url}\""
            ))
            .map_err(|_| ConfigError::Invalid {
                what: "resource",
                reason: "cannot be written in a WWW-Authenticate header".into(),
            })
        };
        Ok(Self {
            paths,
            document,
            cors: rs.cors,
            challenge: header("")?,
            invalid: header("error=\"invalid_token\", ")?,
            metadata_url,
        })
    }

    /// Whether `path` is where the metadata document is served.
    pub(crate) fn is_metadata_path(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }

    /// The metadata document (GET, HEAD), or the answer to its preflight.
    pub(crate) fn metadata(&self, method: &Method, headers: &HeaderMap) -> Page {
        if self.cors && is_preflight(method, headers) {
            return self.preflight(headers);
        }
        let mut resp = if method == Method::GET || method == Method::HEAD {
            let body = if method == Method::GET {
                self.document.clone()
            } else {
                Bytes::new()
            };
            let mut r = Response::new(Full::new(body));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(METADATA_MAX_AGE),
            );
            r
        } else {
            crate::responses::method_not_allowed("GET, HEAD")
        };
        self.finish(resp.headers_mut());
        resp
    }

    /// The answer to a CORS preflight: any origin, the requested method and headers, no
    /// credentials.
    pub(crate) fn preflight(&self, headers: &HeaderMap) -> Page {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        // The requested header names, each a valid name (anything else is left out).
        let requested: Vec<String> = headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty() && HeaderName::from_bytes(n.as_bytes()).is_ok())
            .take(32)
            .map(str::to_ascii_lowercase)
            .collect();
        let allow = if requested.is_empty() {
            "authorization, content-type".to_owned()
        } else {
            requested.join(", ")
        };
        if let Ok(v) = HeaderValue::from_str(&allow) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        resp
    }

    /// Makes an answer readable cross-origin (when on): any origin, `WWW-Authenticate`
    /// exposed. What the app set itself is kept.
    pub(crate) fn finish(&self, headers: &mut HeaderMap) {
        if self.cors {
            cors(headers);
        }
    }

    /// The app's own answer: every `Bearer` challenge of a 401 names the metadata (a 401
    /// without one gets this resource's), a 403 made for a missing scope
    /// ([`Claims::require_scope`](crate::Claims::require_scope) in a handler) without a
    /// challenge gets the `insufficient_scope` one, and (CORS on) it is readable cross-origin.
    pub(crate) fn app_answer<B>(&self, resp: &mut Response<B>) {
        match resp.status() {
            StatusCode::UNAUTHORIZED => self.name_metadata(resp.headers_mut()),
            StatusCode::FORBIDDEN if !resp.headers().contains_key(header::WWW_AUTHENTICATE) => {
                if let Some(Refusal::MissingScope(scope)) = resp.extensions().get::<Refusal>() {
                    let value = self.insufficient_scope(Some(scope));
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                }
            }
            _ => {}
        }
        self.finish(resp.headers_mut());
    }

    /// Makes every `Bearer` challenge of these headers name the metadata, keeping every other
    /// challenge and value as it is: a bare `Bearer` becomes this resource's challenge, one with
    /// parameters (RFC 9470's step-up, the app's own) gets `resource_metadata` added at its
    /// end. Without any `Bearer` challenge, this resource's is added beside the others. A value
    /// that cannot be parsed (RFC 9110 section 11.6.1) is kept as it is.
    fn name_metadata(&self, headers: &mut HeaderMap) {
        let values: Vec<HeaderValue> = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .cloned()
            .collect();
        let mut bearer = false;
        let mut out = Vec::with_capacity(values.len() + 1);
        for value in values {
            let rewritten = value.to_str().ok().and_then(|text| {
                let challenges = challenges(text)?;
                bearer |= challenges.iter().any(|c| c.bearer);
                self.with_metadata(text, &challenges)
            });
            out.push(rewritten.unwrap_or(value));
        }
        if !bearer {
            out.push(self.challenge.clone());
        }
        headers.remove(header::WWW_AUTHENTICATE);
        for value in out {
            headers.append(header::WWW_AUTHENTICATE, value);
        }
    }

    /// `text` with `resource_metadata` in each of its `Bearer` challenges that lacks it;
    /// `None` when nothing changes.
    fn with_metadata(&self, text: &str, challenges: &[Challenge]) -> Option<HeaderValue> {
        let mut out = String::with_capacity(text.len() + self.metadata_url.len() + 64);
        let mut at = 0;
        let mut changed = false;
        for c in challenges.iter().filter(|c| c.bearer && !c.names_metadata) {
            out.push_str(&text[at..c.start]);
            if c.bare {
                out.push_str(self.challenge.to_str().ok()?);
            } else {
                out.push_str(&text[c.start..c.end]);
                out.push_str(&format!(", resource_metadata=\"{}\"", self.metadata_url));
            }
            at = c.end;
            changed = true;
        }
        if !changed {
            return None;
        }
        out.push_str(&text[at..]);
        HeaderValue::from_str(&out).ok()
    }

    /// The challenge of a 403 for a missing scope (RFC 6750 section 3.1), naming the scope when
    /// it can be written as a `scope-token` (RFC 6749 section 3.3).
    fn insufficient_scope(&self, scope: Option<&str>) -> HeaderValue {
        let scope = scope
            .filter(|s| {
                !s.is_empty()
                    && s.bytes().all(|b| {
                        b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
                    })
            })
            .map(|s| format!("scope=\"{s}\", "))
            .unwrap_or_default();
        HeaderValue::from_str(&format!(
            "Bearer realm=\"OAuth\", error=\"insufficient_scope\", {scope}resource_metadata=\"{}\"",
            self.metadata_url
        ))
        .unwrap_or_else(|_| self.challenge.clone())
    }
}

/// One challenge of a `WWW-Authenticate` value: where it is, and what it says.
#[derive(Debug)]
struct Challenge {
    start: usize,
    /// Just after its last parameter (or its scheme).
    end: usize,
    bearer: bool,
    /// No parameters and no token68.
    bare: bool,
    /// Has a `resource_metadata` parameter (names compared without case, RFC 9110 11.2).
    names_metadata: bool,
}

/// The challenges of a `WWW-Authenticate` value (RFC 9110 section 11.6.1:
/// `#( auth-scheme [ 1*SP ( token68 / #auth-param ) ] )`), or `None` if it does not parse.
fn challenges(text: &str) -> Option<Vec<Challenge>> {
    let b = text.as_bytes();
    let tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    let token68char = |c: u8| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c);
    let skip = |mut i: usize, set: &[u8]| {
        while i < b.len() && set.contains(&b[i]) {
            i += 1;
        }
        i
    };
    let token = |mut i: usize| {
        let s = i;
        while i < b.len() && tchar(b[i]) {
            i += 1;
        }
        (s, i)
    };
    // A quoted-string from the opening quote; the index just after the closing one.
    let quoted = |mut i: usize| -> Option<usize> {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'"' => return Some(i + 1),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        None
    };
    let mut out = Vec::new();
    let mut i = skip(0, b" \t,");
    while i < b.len() {
        let (s, e) = token(i);
        if s == e {
            return None;
        }
        let mut c = Challenge {
            start: s,
            end: e,
            bearer: text[s..e].eq_ignore_ascii_case("bearer"),
            bare: true,
            names_metadata: false,
        };
        i = e;
        let after = skip(i, b" ");
        if after > i && after < b.len() && b[after] != b',' {
            i = after;
            // token68, or auth-params.
            let (ps, pe) = token(i);
            let eq = skip(pe, b" \t");
            if pe > ps && eq < b.len() && b[eq] == b'=' && {
                let v = skip(eq + 1, b" \t");
                v < b.len() && b[v] != b','
            } {
                // auth-params, until a comma followed by something that is not `name=`.
                let mut p = i;
                loop {
                    let (ns, ne) = token(p);
                    let eq = skip(ne, b" \t");
                    if ns == ne || eq >= b.len() || b[eq] != b'=' {
                        return None;
                    }
                    if text[ns..ne].eq_ignore_ascii_case("resource_metadata") {
                        c.names_metadata = true;
                    }
                    let v = skip(eq + 1, b" \t");
                    let ve = if v < b.len() && b[v] == b'"' {
                        quoted(v)?
                    } else {
                        let (vs, ve) = token(v);
                        if vs == ve {
                            return None;
                        }
                        ve
                    };
                    c.end = ve;
                    c.bare = false;
                    let next = skip(ve, b" \t");
                    if next >= b.len() {
                        p = next;
                        break;
                    }
                    if b[next] != b',' {
                        return None;
                    }
                    let after_comma = skip(next + 1, b" \t,");
                    let (ns2, ne2) = token(after_comma);
                    let eq2 = skip(ne2, b" \t");
                    if ns2 < ne2 && eq2 < b.len() && b[eq2] == b'=' {
                        p = after_comma;
                    } else {
                        p = after_comma;
                        break;
                    }
                }
                i = p;
            } else {
                // token68.
                let mut t = i;
                while t < b.len() && token68char(b[t]) {
                    t += 1;
                }
                t = skip(t, b"=");
                if t == i {
                    return None;
                }
                c.end = t;
                c.bare = false;
                i = skip(t, b" \t");
                if i < b.len() && b[i] != b',' {
                    return None;
                }
            }
        }
        out.push(c);
        i = skip(i, b" \t,");
    }
    Some(out)
}

/// Makes an answer readable from any origin, `WWW-Authenticate` exposed; what the app set
/// itself is kept.
pub(crate) fn cors(headers: &mut HeaderMap) {
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    if !headers.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate"),
        );
    }
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The resource identifier must be an absolute https URL (http on loopback hosts) without a
/// fragment (RFC 8707 section 2) or a query (RFC 9728 section 3.1 builds the metadata URL
/// from its path).
pub(crate) fn check_resource(resource: &str) -> Result<url::Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        what: "resource",
        value: resource.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(resource).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" && !crate::config::checks::is_loopback_http(&url) {
        return Err(invalid("must be https (http only on loopback hosts)"));
    }
    if url.fragment().is_some() || url.query().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("must be an absolute URL with a host"));
    }
    Ok(url)
}

/// The app's [`Responses`] in resource mode: never a redirect to a login (a browser is answered
/// like any API client), and every 401 and 403 with the RFC 9728 / RFC 6750 challenge.
pub(crate) struct ResourceResponses {
    pub(crate) inner: Arc<dyn Responses>,
    pub(crate) settings: Arc<ResourceSettings>,
}

/// A browser is answered like an API client: there is no login to send it to.
fn api(client: Client) -> Client {
    match client {
        Client::Browser => Client::Api,
        other => other,
    }
}

impl ResourceResponses {
    /// The resource's challenge on a refusal: in place of none or of the default answers'
    /// plain ones; a challenge of the app's own hook is kept, its `Bearer` challenges naming
    /// the metadata.
    fn challenged(&self, mut resp: Response<Bytes>, value: &HeaderValue) -> Response<Bytes> {
        let status = resp.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            let mut current = resp.headers().get_all(header::WWW_AUTHENTICATE).iter();
            let plain = match (current.next(), current.next()) {
                (None, _) => true,
                (Some(v), None) => v == "Bearer" || v == INVALID_TOKEN_CHALLENGE,
                _ => false,
            };
            if plain {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value.clone());
            } else if status == StatusCode::UNAUTHORIZED {
                self.settings.name_metadata(resp.headers_mut());
            }
        }
        self.settings.finish(resp.headers_mut());
        resp
    }
}

impl Responses for ResourceResponses {
    fn unauthenticated(&self, cx: &UnauthenticatedContext<'_>) -> Response<Bytes> {
        let cx = UnauthenticatedContext {
            client: api(cx.client),
            ..cx.clone()
        };
        let resp = self.inner.unauthenticated(&cx);
        self.challenged(resp, &self.settings.challenge)
    }

    fn step_up(&self, cx: &StepUpContext<'_>) -> Response<Bytes> {
        let cx = StepUpContext {
            client: api(cx.client),
            ..cx.clone()
        };
        let mut resp = self.inner.step_up(&cx);
        // RFC 9470's challenge, naming the metadata like every 401 of this mode.
        if resp.status() == StatusCode::UNAUTHORIZED
            && !resp.headers().contains_key(header::WWW_AUTHENTICATE)
        {
            let challenge = crate::step_up::challenge(cx.max_age, cx.acr_values);
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        self.settings.app_answer(&mut resp);
        resp
    }

    fn forbidden(&self, cx: &ForbiddenContext<'_>) -> Response<Bytes> {
        let cx = ForbiddenContext {
            client: api(cx.client),
            ..cx.clone()
        };
        let resp = self.inner.forbidden(&cx);
        match cx.what.split_once(' ') {
            Some(("scope", scope)) => {
                let value = self.settings.insufficient_scope(Some(scope));
                self.challenged(resp, &value)
            }
            _ => {
                let mut resp = resp;
                self.settings.finish(resp.headers_mut());
                resp
            }
        }
    }

    fn error_page(&self, cx: &ErrorPage<'_>) -> Response<Bytes> {
        let mut resp = self.inner.error_page(cx);
        self.settings.finish(resp.headers_mut());
        resp
    }

    fn unavailable(&self, cx: &UnavailableContext<'_>) -> Response<Bytes> {
        let cx = UnavailableContext {
            client: api(cx.client),
            ..cx.clone()
        };
        let mut resp = self.inner.unavailable(&cx);
        self.settings.finish(resp.headers_mut());
        resp
    }

    fn invalid_token(&self, cx: &InvalidTokenContext) -> Response<Bytes> {
        let cx = InvalidTokenContext {
            client: api(cx.client),
            ..cx.clone()
        };
        let resp = self.inner.invalid_token(&cx);
        self.challenged(resp, &self.settings.invalid)
    }

    fn confirm_logout(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        self.inner.confirm_logout(cx)
    }

    fn confirm_login(&self, cx: &ConfirmContext<'_>) -> Response<Bytes> {
        self.inner.confirm_login(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_paths_follow_rfc_9728_section_3_1() {
        let rs =
            ResourceSettings::new(&ResourceServer::new("https://a.example/mcp"), vec![]).unwrap();
        assert!(rs.is_metadata_path("/.well-known/oauth-protected-resource/mcp"));
        assert!(rs.is_metadata_path("/.well-known/oauth-protected-resource"));
        assert!(!rs.is_metadata_path("/mcp/.well-known/oauth-protected-resource"));
        assert_eq!(
            rs.metadata_url,
            "https://a.example/.well-known/oauth-protected-resource/mcp"
        );
        let root =
            ResourceSettings::new(&ResourceServer::new("https://a.example/"), vec![]).unwrap();
        assert_eq!(
            root.metadata_url,
            "https://a.example/.well-known/oauth-protected-resource"
        );
    }

    /// RFC 9110 section 11.6.1's grammar: schemes, auth-params (quoted strings with commas and
    /// escapes), token68, several challenges in one value; malformed values are `None`.
    #[test]
    fn challenges_are_parsed_by_the_grammar() {
        fn parsed(text: &str) -> Option<Vec<(&str, bool, bool, bool)>> {
            challenges(text).map(|cs| {
                cs.iter()
                    .map(|c| (&text[c.start..c.end], c.bearer, c.bare, c.names_metadata))
                    .collect()
            })
        }
        assert_eq!(parsed("Bearer"), Some(vec![("Bearer", true, true, false)]));
        assert_eq!(
            parsed(r#"Bearer error="a, b", Basic realm="x""#),
            Some(vec![
                (r#"Bearer error="a, b""#, true, false, false),
                (r#"Basic realm="x""#, false, false, false),
            ])
        );
        assert_eq!(
            parsed(r#"bearer Resource_Metadata = "u", error=e"#),
            Some(vec![(
                r#"bearer Resource_Metadata = "u", error=e"#,
                true,
                false,
                true
            )])
        );
        assert_eq!(
            parsed(r#"Bearer error_description="resource_metadata=\"x\"""#),
            Some(vec![(
                r#"Bearer error_description="resource_metadata=\"x\"""#,
                true,
                false,
                false
            )])
        );
        assert_eq!(
            parsed("Negotiate abc/def==, Bearer"),
            Some(vec![
                ("Negotiate abc/def==", false, false, false),
                ("Bearer", true, true, false),
            ])
        );
        for bad in [
            r#"Bearer error="open"#,
            "Bearer a=b c",
            "=x",
            r#"Bearer "x""#,
        ] {
            assert_eq!(parsed(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_scope_that_cannot_be_quoted_is_left_out() {
        let rs = ResourceSettings::new(&ResourceServer::new("https://a.example/"), vec![]).unwrap();
        let v = rs.insufficient_scope(Some("a\"b"));
        assert!(!v.to_str().unwrap().contains("scope="), "{v:?}");
        let v = rs.insufficient_scope(Some("files:read"));
        assert!(
            v.to_str().unwrap().contains("scope=\"files:read\""),
            "{v:?}"
        );
    }
}
