//! `AuthService`: routes auth requests, reads sessions, attaches claims.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use tower_service::Service;
use tracing::Instrument;

use crate::body::AuthBody;
use crate::future::ResponseFuture;
use crate::responses::{method_not_allowed, Client};
use crate::session::{Outcome, Resolution};
use crate::state::Shared;
use crate::{bearer, routes, session};

/// The service made by [`AuthLayer`](crate::AuthLayer).
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> AuthService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Carried in request extensions so extractors can build the right rejection.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
#[derive(Clone)]
pub(crate) struct AuthContext(pub(crate) Arc<Shared>);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if let Some(resource) = &self.shared.resource {
            let resource = resource.clone();
            return self.call_resource(req, &resource);
        }
        let shared = &self.shared;
        let settings = &shared.settings;
        let path = req.uri().path();
        if path == settings.login_path {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return ResponseFuture::ready(method_not_allowed("GET, HEAD"));
            }
            let (parts, _) = req.into_parts();
            // Boxed: a Scalekit IdP-initiated login verifies a token, which may wait for keys.
            return ResponseFuture::route(Box::pin(
                routes::login(shared.clone(), parts).instrument(app_span(shared)),
            ));
        }
        if path == settings.callback_path {
            if req.method() != Method::GET {
                return ResponseFuture::ready(method_not_allowed("GET"));
            }
            let (parts, _) = req.into_parts();
            return ResponseFuture::route(Box::pin(
                routes::callback(shared.clone(), parts).instrument(app_span(shared)),
            ));
        }
        if path == settings.logout_path {
            if req.method() != Method::GET && req.method() != Method::POST {
                return ResponseFuture::ready(method_not_allowed("GET, POST"));
            }
            let (parts, _) = req.into_parts();
            return ResponseFuture::route(Box::pin(
                routes::logout(shared.clone(), parts).instrument(app_span(shared)),
            ));
        }
        if path == settings.webhook_path && settings.webhooks.is_some() {
            if req.method() != Method::POST {
                return ResponseFuture::ready(method_not_allowed("POST"));
            }
            let (parts, body) = req.into_parts();
            let shared = shared.clone();
            return ResponseFuture::route(Box::pin(async move {
                let limited = http_body_util::Limited::new(body, routes::BACKCHANNEL_MAX_BODY);
                let body = http_body_util::BodyExt::collect(limited)
                    .await
                    .ok()
                    .map(|c| c.to_bytes());
                crate::webhook::webhook(shared.webhook_context(), parts.headers, body).await
            }));
        }
        if path == settings.backchannel_path {
            if req.method() != Method::POST {
                return ResponseFuture::ready(method_not_allowed("POST"));
            }
            let (parts, body) = req.into_parts();
            let shared = shared.clone();
            let content_type = parts.headers.get(http::header::CONTENT_TYPE).cloned();
            return ResponseFuture::route(Box::pin(async move {
                let limited = http_body_util::Limited::new(body, routes::BACKCHANNEL_MAX_BODY);
                let body = http_body_util::BodyExt::collect(limited)
                    .await
                    .ok()
                    .map(|c| c.to_bytes());
                routes::backchannel_logout(shared, content_type, body).await
            }));
        }

        // Claims belong to the layer that verified them: whatever an outer layer attached is
        // removed here, and replaced by this layer's own, if it finds a session.
        req.extensions_mut().remove::<crate::Claims>();

        if settings.bearer && bearer::bearer_token(req.headers()).is_some() {
            return self.call_bearer(req);
        }
        match session::resolve_now(shared, req.headers()) {
            Resolution::Ready(outcome) => self.proceed(req, outcome),
            Resolution::Pending => {
                let client = Client::of(req.method(), req.headers());
                let here = req
                    .uri()
                    .path_and_query()
                    .map(|pq| pq.as_str())
                    .and_then(crate::return_to::sanitize)
                    .unwrap_or(&settings.default_return)
                    .to_owned();
                let fut = session::resolve(shared.clone(), req.headers().clone(), client, here);
                req.extensions_mut().insert(AuthContext(shared.clone()));
                let layer = shared.verifier.layer();
                let finish = self.finish();
                let inner = self.take_ready();
                ResponseFuture::resolving(Box::pin(fut), inner, req, finish, layer)
            }
        }
    }
}

impl<S> AuthService<S> {
    /// What the layer adds to the app's answers.
    fn finish(&self) -> crate::future::Finish {
        crate::future::Finish {
            explain: self.shared.settings.explain_refusals,
            resource: self.shared.resource.clone(),
        }
    }

    /// Protected-resource mode: the metadata document, CORS preflights, and bearer tokens;
    /// no routes of the layer's own, no cookies.
    fn call_resource<ReqBody>(
        &mut self,
        mut req: Request<ReqBody>,
        resource: &crate::resource::ResourceSettings,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
    {
        if resource.is_metadata_path(req.uri().path()) {
            return ResponseFuture::ready(resource.metadata(req.method(), req.headers()));
        }
        if resource.cors && crate::resource::is_preflight(req.method(), req.headers()) {
            return ResponseFuture::ready(resource.preflight(req.headers()));
        }
        req.extensions_mut().remove::<crate::Claims>();
        match bearer::bearer_token(req.headers()) {
            Some(_) => self.call_bearer(req),
            None => {
                let outcome = Outcome::refused(crate::refusal::Refusal::NoCredentials);
                self.proceed(req, outcome)
            }
        }
    }

    /// A request with an `Authorization: Bearer` token: verified (waiting for keys if need
    /// be), never refreshed, no cookies. Only the path that waits copies the token.
    fn call_bearer<ReqBody>(&mut self, mut req: Request<ReqBody>) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
    {
        let client = Client::of(req.method(), req.headers());
        // The callers saw the header; a missing one would be refused like an empty token.
        let token = bearer::bearer_token(req.headers()).unwrap_or("");
        match bearer::bearer_now(&self.shared, token, client) {
            Resolution::Ready(outcome) => self.proceed(req, outcome),
            Resolution::Pending => {
                let shared = self.shared.clone();
                let fut = bearer::bearer(shared.clone(), token.to_owned(), client);
                req.extensions_mut().insert(AuthContext(shared.clone()));
                let layer = shared.verifier.layer();
                let finish = self.finish();
                let inner = self.take_ready();
                ResponseFuture::resolving(Box::pin(fut), inner, req, finish, layer)
            }
        }
    }

    /// Calls the inner service with the outcome's claims and cookies, or answers for it.
    fn proceed<ReqBody>(
        &mut self,
        mut req: Request<ReqBody>,
        outcome: Outcome,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        match outcome {
            Outcome::Continue {
                claims,
                set_cookies,
                refusal,
            } => {
                attach(&mut req, claims, &self.shared);
                if let Some(refusal) = refusal {
                    let layer = self.shared.verifier.layer();
                    req.extensions_mut()
                        .insert(crate::refusal::Refused { layer, refusal });
                }
                let finish = self.finish();
                ResponseFuture::inner(self.inner.call(req), set_cookies, finish)
            }
            Outcome::Respond(page) => ResponseFuture::ready(*page),
        }
    }
}

impl<S: Clone> AuthService<S> {
    /// The inner service that was polled ready, for a future that calls it later; a clone
    /// stays (the next call polls it ready again). Only the asynchronous paths pay for the
    /// clone: the common one calls the ready service at once.
    /// See https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
    fn take_ready(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

/// The span of the layer's own routes: which app (client id) a log line is about, for servers
/// that run several layers. Not on the signed-in path: it would cost every request.
fn app_span(shared: &Shared) -> tracing::Span {
    tracing::info_span!("oidc", app = %shared.settings.client_id)
}

/// Puts the claims into the request, or, without a session, what the extractors need to build
/// the unauthenticated answer (one extension either way).
fn attach<B>(req: &mut Request<B>, claims: Option<crate::Claims>, shared: &Arc<Shared>) {
    match claims {
        Some(claims) => {
            req.extensions_mut().insert(claims);
            // The guard extractors' 403 needs the app's responses (never the default's cost).
            // So do the extractors of the login hook's app data, when it is missing.
            // And an explained refusal, the settings.
            if shared.custom_responses
                || shared.settings.hooks.login.is_some()
                || shared.settings.explain_refusals
            {
                req.extensions_mut().insert(AuthContext(shared.clone()));
            }
        }
        None => {
            req.extensions_mut().insert(AuthContext(shared.clone()));
        }
    }
}
