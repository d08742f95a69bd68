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
        Inner { #[pin] fut: S::Future, set_cookies: Vec<HeaderValue> },
        Ready { page: Option<Page> },
        Route { fut: BoxFuture<'static, Page> },
        Resolving {
            fut: BoxFuture<'static, Outcome>,
            inner: Option<S>,
            req: Option<Request<ReqBody>>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(fut: S::Future, set_cookies: Vec<HeaderValue>) -> Self {
        Self {
            state: State::Inner { fut, set_cookies },
        }
    }

    pub(crate) fn ready(page: Page) -> Self {
        Self {
            state: State::Ready { page: Some(page) },
        }
    }

    pub(crate) fn route(fut: BoxFuture<'static, Page>) -> Self {
        Self {
            state: State::Route { fut },
        }
    }

    pub(crate) fn resolving(
        fut: BoxFuture<'static, Outcome>,
        inner: S,
        req: Request<ReqBody>,
    ) -> Self {
        Self {
            state: State::Resolving {
                fut,
                inner: Some(inner),
                req: Some(req),
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
                StateProj::Inner { fut, set_cookies } => {
                    let resp = ready!(fut.poll(cx))?;
                    let mut resp = resp.map(AuthBody::inner);
                    crate::responses::add_cookies(resp.headers_mut(), std::mem::take(set_cookies));
                    return Poll::Ready(Ok(resp));
                }
                StateProj::Ready { page } => {
                    let page = page.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(own(page)));
                }
                StateProj::Route { fut } => {
                    let page = ready!(fut.as_mut().poll(cx));
                    return Poll::Ready(Ok(own(page)));
                }
                StateProj::Resolving { fut, inner, req } => {
                    let outcome = ready!(fut.as_mut().poll(cx));
                    if let Some(page) = outcome.reject {
                        return Poll::Ready(Ok(own(*page)));
                    }
                    let mut req = req.take().expect("ResponseFuture polled after completion");
                    let mut inner = inner
                        .take()
                        .expect("ResponseFuture polled after completion");
                    if let Some(claims) = outcome.claims {
                        req.extensions_mut().insert(claims);
                    }
                    State::Inner {
                        fut: inner.call(req),
                        set_cookies: outcome.set_cookies,
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}
