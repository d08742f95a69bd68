//! The quickstart's start-up mistakes, as a newcomer meets them: the example is run as a
//! process (`cargo test` builds it), and what it prints must name the cause and the fix in a
//! line, never a Debug dump.

use std::process::Command;

/// The quickstart binary `cargo test` built beside this test binary.
fn quickstart() -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let bin = dir
        .join("examples")
        .join(format!("quickstart{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds the examples (or run `cargo build --example \
         quickstart --all-features`)",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    for var in [
        "SCALEKIT_ENVIRONMENT_URL",
        "OIDC_ISSUER",
        "AUTH_COOKIE_KEY",
        "BIND_ADDR",
        "SCALEKIT_WEBHOOK_SECRET",
        "AUTH_SESSION_MAX_AGE",
        "AUTH_SESSION_IDLE_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "off");
    cmd
}

/// Runs the quickstart to its failure and returns what it wrote to stderr.
fn fails_with(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run the quickstart");
    assert!(!out.status.success(), "the quickstart started");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("Error {") && !stderr.contains("Os {"),
        "{stderr}"
    );
    stderr
}

#[test]
fn port_in_use_says_which_app_url_to_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let stderr = fails_with(quickstart().env("APP_URL", format!("http://127.0.0.1:{port}")));
    let next = format!("APP_URL=http://127.0.0.1:{}", port + 1);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port} is already in use")) && stderr.contains(&next),
        "{stderr}"
    );
    drop(taken);
}

#[test]
fn plain_http_app_url_off_this_machine_is_refused() {
    let stderr = fails_with(quickstart().env("APP_URL", "http://app.example.com:3000"));
    for word in [
        "APP_URL=http://app.example.com:3000",
        "https://",
        "BIND_ADDR",
        "127.0.0.1",
    ] {
        assert!(stderr.contains(word), "{word:?} not in {stderr}");
    }
}

#[test]
fn an_issuer_without_a_scheme_is_named() {
    let stderr = fails_with(
        quickstart()
            .env("APP_URL", "http://127.0.0.1:1")
            .env("OIDC_ISSUER", "id.example.com")
            .env("OIDC_CLIENT_ID", "app")
            .env("OIDC_CLIENT_SECRET", "shh"),
    );
    assert!(
        stderr.contains("OIDC_ISSUER") && stderr.contains("https://id.example.com"),
        "{stderr}"
    );
}
