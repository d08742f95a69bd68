//! The response future of [`AuthService`](crate::AuthService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{own, AuthBody};
use crate::responses::Page;
use crate::session::Outcome;

pin_project! {
    /// Response future of [`AuthService`](crate::AuthService).
    ///
    /// The common case (a valid session whose token was verified before) resolves the session
    /// synchronously and only wraps the inner service's future, without boxing.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // The inner service's response is on its way; the layer's cookies go on it (and, when
        // refusals are explained, the reason of a refusal the app made).
        Inner { #[pin] fut: S::Future, set_cookies: Vec<HeaderValue>, finish: Finish },
        // The layer answers at once.
        Ready { page: Page },
        // One of the layer's routes.
        Route { fut: BoxFuture<'static, Page> },
        // The session or bearer token needs waiting for (a refresh, a key fetch). The future
        // owns the inner service and the request, and calls the service once it is decided.
        Resolving { fut: BoxFuture<'static, Resolved<S::Future>>, finish: Finish },
    }
}

/// What the layer adds to the app's answer besides its cookies.
#[derive(Clone, Debug, Default)]
pub(crate) struct Finish {
    /// Refusals are explained: a refusal the app made says why too.
    pub(crate) explain: bool,
    /// Protected-resource mode: the app's refusals get their challenges, and (CORS on) the
    /// answer is readable cross-origin.
    pub(crate) resource: Option<std::sync::Arc<crate::resource::ResourceSettings>>,
}

/// What the asynchronous path ends with: the inner service called, or the layer's answer.
type Resolved<F> = Result<(F, Vec<HeaderValue>), Page>;

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(fut: S::Future, set_cookies: Vec<HeaderValue>, finish: Finish) -> Self {
        Self {
            state: State::Inner {
                fut,
                set_cookies,
                finish,
            },
        }
    }

    pub(crate) fn ready(page: Page) -> Self {
        Self {
            state: State::Ready { page },
        }
    }

    pub(crate) fn route(fut: BoxFuture<'static, Page>) -> Self {
        Self {
            state: State::Route { fut },
        }
    }

    /// Waits for `outcome`, then calls `inner` (polled ready) with the request and the claims,
    /// or answers with the layer's page.
    pub(crate) fn resolving(
        outcome: impl Future<Output = Outcome> + Send + 'static,
        mut inner: S,
        mut req: Request<ReqBody>,
        finish: Finish,
        layer: crate::claims::LayerId,
    ) -> Self
    where
        S: Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
    {
        let fut = async move {
            match outcome.await {
                Outcome::Respond(page) => Err(*page),
                Outcome::Continue {
                    claims,
                    set_cookies,
                    refusal,
                } => {
                    if let Some(claims) = claims {
                        req.extensions_mut().insert(claims);
                    }
                    // Why the request is anonymous, for the guards' answer (and its metric).
                    if let Some(refusal) = refusal {
                        req.extensions_mut()
                            .insert(crate::refusal::Refused { layer, refusal });
                    }
                    Ok((inner.call(req), set_cookies))
                }
            }
        };
        Self {
            state: State::Resolving {
                fut: Box::pin(fut),
                finish,
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Inner {
                    fut,
                    set_cookies,
                    finish,
                } => {
                    let resp = ready!(fut.poll(cx))?;
                    let mut resp = resp.map(AuthBody::inner);
                    crate::responses::add_cookies(resp.headers_mut(), std::mem::take(set_cookies));
                    if finish.explain {
                        // A refusal the app made (`Forbidden` from a handler) says why too.
                        crate::responses::explain_app_refusal(&mut resp);
                    }
                    if let Some(resource) = &finish.resource {
                        resource.app_answer(&mut resp);
                    }
                    return Poll::Ready(Ok(resp));
                }
                StateProj::Ready { page } => {
                    return Poll::Ready(Ok(own(std::mem::take(page))));
                }
                StateProj::Route { fut } => {
                    let page = ready!(fut.as_mut().poll(cx));
                    return Poll::Ready(Ok(own(page)));
                }
                StateProj::Resolving { fut, finish } => match ready!(fut.as_mut().poll(cx)) {
                    Ok((fut, set_cookies)) => State::Inner {
                        fut,
                        set_cookies,
                        finish: std::mem::take(finish),
                    },
                    Err(page) => return Poll::Ready(Ok(own(page))),
                },
            };
            self.as_mut().project().state.set(next);
        }
    }
}
