//! A tonic gRPC server protected by the layer: `greeter.Greeter/SayHello` for any signed-in
//! caller, `greeter.Admin/Stats` for callers with the role `admin`.
//!
//! ```text
//! cargo run --example tonic_grpc            # serve on GRPC_ADDR (default 127.0.0.1:50051)
//! cargo run --example tonic_grpc -- call TOKEN [SayHello|Stats]   # call it
//! ```
//!
//! Callers send `authorization: Bearer <access token>`; browsers using grpc-web can use the
//! layer's cookie session instead. With no provider configured, the example starts the embedded
//! test provider and prints ready-made tokens for a user and an admin. With a real provider set
//! `OIDC_ISSUER` (or `SCALEKIT_ENVIRONMENT_URL`), `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`; access
//! tokens must be issued for that client (or an audience added with `.audience(..)`).
//! `examples/greeter/greeter.proto` describes the services for grpcurl.

#[path = "greeter/mod.rs"]
mod greeter;

use tower_oidc_auth::testing::{TestProvider, TestUser};
use tower_oidc_auth::{AuthLayer, Provider};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The message, then what caused it, one line each: never a Debug dump.
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = std::env::var("GRPC_ADDR").unwrap_or_else(|_| "127.0.0.1:50051".into());
    if args.get(1).map(String::as_str) == Some("call") {
        let token = args.get(2).map(String::as_str).filter(|t| !t.is_empty());
        let path = match args.get(3).map(String::as_str) {
            Some("Stats") => "/greeter.Admin/Stats",
            _ => "/greeter.Greeter/SayHello",
        };
        match greeter::call(&addr, path, "tonic", token).await {
            Ok(reply) => println!("OK: {}", reply.message),
            Err(status) => println!("{:?}: {}", status.code(), status.message()),
        }
        return Ok(());
    }

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_oidc_auth=debug".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let redirect = format!("http://{addr}/auth/callback");
    let mut _embedded = None;
    let auth = match Provider::from_env()? {
        Some(_) => {
            let mut key = [0u8; 64];
            getrandom::fill(&mut key)?;
            // SCALEKIT_* or OIDC_* (issuer, client id and secret).
            AuthLayer::builder()
                .provider_from_env()?
                .redirect_url(redirect)
                .cookie_key(key)
                .build()
                .await?
        }
        None => {
            let provider = TestProvider::builder().start().await;
            let auth = provider.layer_builder(redirect).build().await?;
            let user = provider.access_token(&TestUser::new("usr_ada").email("ada@example.com"));
            let admin =
                provider.access_token(&TestUser::new("usr_root").role("admin").email("root@x.io"));
            println!("Embedded test provider at {}", provider.issuer());
            print_what_to_try(&addr, &user, &admin)?;
            _embedded = Some(provider);
            auth
        }
    };

    println!("gRPC server on {addr}");
    tonic::transport::Server::builder()
        .layer(auth.clone())
        .add_service(
            tower::ServiceBuilder::new()
                .layer(auth.require())
                .service(greeter::GreeterServer),
        )
        .add_service(
            tower::ServiceBuilder::new()
                .layer(auth.require_role("admin"))
                .service(greeter::AdminServer),
        )
        .serve(addr.parse()?)
        .await?;
    Ok(())
}

/// Writes the two tokens to files (each is about 900 characters) and prints labelled commands
/// that read them.
fn print_what_to_try(addr: &str, user: &str, admin: &str) -> std::io::Result<()> {
    let dir = std::env::temp_dir().join("tower-oidc-auth-tonic");
    std::fs::create_dir_all(&dir)?;
    let user_file = dir.join("user.token");
    let admin_file = dir.join("admin.token");
    std::fs::write(&user_file, user)?;
    std::fs::write(&admin_file, admin)?;
    let (u, a) = (user_file.display(), admin_file.display());
    // `call` reads GRPC_ADDR too: name it when it is not the default.
    let call = if addr == "127.0.0.1:50051" {
        "cargo run --example tonic_grpc -- call".to_owned()
    } else {
        format!("GRPC_ADDR={addr} cargo run --example tonic_grpc -- call")
    };
    println!(
        "\nAccess tokens (valid 5 minutes), written to files:\n  \
         user  usr_ada, no role:     {u}\n  \
         admin usr_root, role admin: {a}\n\
         \nTry, in another terminal (the server must be running):\n\
         \n  1. A signed-in user says hello                      -> OK\n     \
         {call} \"$(cat '{u}')\" SayHello\n\
         \n  2. The same user asks for the admin stats           -> PermissionDenied\n     \
         {call} \"$(cat '{u}')\" Stats\n\
         \n  3. The admin asks for them                          -> OK\n     \
         {call} \"$(cat '{a}')\" Stats\n\
         \n  4. No token at all                                  -> Unauthenticated\n     \
         {call} '' SayHello\n\
         \n  5. The same as 1 with grpcurl\n     \
         grpcurl -plaintext -import-path examples/greeter -proto greeter.proto \\\n       \
         -H \"authorization: Bearer $(cat '{u}')\" -d '{{\"name\":\"Ada\"}}' \\\n       \
         {addr} greeter.Greeter/SayHello\n"
    );
    Ok(())
}
