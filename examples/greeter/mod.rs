//! A greeter-style gRPC service written by hand with tonic's building blocks (what
//! tonic-prost-build would generate from `greeter.proto`), so building needs no `protoc`.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tower_oidc_auth::ClaimsExt;

/// `greeter.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `greeter.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `greeter.Greeter/SayHello`: greets the caller, echoing the subject from the verified claims.
async fn say_hello(request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
    let claims = request
        .claims()
        .ok_or_else(|| Status::unauthenticated("sign in first"))?;
    let message = format!("Hello {}, you are {}", request.get_ref().name, claims.sub);
    Ok(Response::new(HelloReply { message }))
}

/// `greeter.Admin/Stats`: only reached by admins (the layer's `require_role("admin")` guards it).
async fn stats(request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
    let claims = request
        .claims()
        .ok_or_else(|| Status::unauthenticated("sign in first"))?;
    // Belt and braces: the same check inside the method, with tonic's Status.
    claims
        .require_role("admin")
        .map_err(|e| Status::permission_denied(e.to_string()))?;
    Ok(Response::new(HelloReply {
        message: format!("stats for admin {}", claims.sub),
    }))
}

type Reply = BoxFut<Result<Response<HelloReply>, Status>>;

#[derive(Clone, Copy)]
struct Unary(fn(Request<HelloRequest>) -> Reply);

impl UnaryService<HelloRequest> for Unary {
    type Response = HelloReply;
    type Future = Reply;
    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        (self.0)(request)
    }
}

fn dispatch(
    method: Option<Unary>,
    req: http::Request<Body>,
) -> BoxFut<Result<http::Response<Body>, Infallible>> {
    match method {
        Some(method) => Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
            Ok(grpc.unary(method, req).await)
        }),
        None => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
    }
}

/// The `greeter.Greeter` service.
#[derive(Clone, Copy, Default)]
pub struct GreeterServer;

impl NamedService for GreeterServer {
    const NAME: &'static str = "greeter.Greeter";
}

impl Service<http::Request<Body>> for GreeterServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFut<Result<http::Response<Body>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let method = match req.uri().path() {
            "/greeter.Greeter/SayHello" => Some(Unary(|r| Box::pin(say_hello(r)))),
            _ => None,
        };
        dispatch(method, req)
    }
}

/// The `greeter.Admin` service.
#[derive(Clone, Copy, Default)]
pub struct AdminServer;

impl NamedService for AdminServer {
    const NAME: &'static str = "greeter.Admin";
}

impl Service<http::Request<Body>> for AdminServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFut<Result<http::Response<Body>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let method = match req.uri().path() {
            "/greeter.Admin/Stats" => Some(Unary(|r| Box::pin(stats(r)))),
            _ => None,
        };
        dispatch(method, req)
    }
}

/// Calls `path` (`/greeter.Greeter/SayHello` or `/greeter.Admin/Stats`) on a server, with an
/// optional bearer token: the client side, as generated code would do it.
pub async fn call(
    addr: &str,
    path: &'static str,
    name: &str,
    bearer: Option<&str>,
) -> Result<HelloReply, Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Status::internal(e.to_string()))?
        .connect()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = Request::new(HelloRequest {
        name: name.to_owned(),
    });
    if let Some(token) = bearer {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("token"))?;
        request.metadata_mut().insert("authorization", value);
    }
    let response = grpc
        .unary(
            request,
            PathAndQuery::from_static(path),
            ProstCodec::<HelloRequest, HelloReply>::default(),
        )
        .await?;
    Ok(response.into_inner())
}
