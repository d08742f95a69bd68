//! The quickstart's start-up mistakes, as a newcomer meets them: the example is run as a
//! process (`cargo test` builds it), and what it prints must name the cause and the fix in a
//! line, never a Debug dump.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;

/// The quickstart's embedded provider listens on a fixed port: one quickstart at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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

/// A running quickstart, stopped when dropped (also when a test fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the quickstart and waits until it listens.
fn started(cmd: &mut Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the quickstart");
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("quickstart output");
        if line.starts_with("Open ") {
            return Running(child);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the quickstart stopped before listening");
}

/// The `name=value` of each Set-Cookie, for a Cookie header.
fn cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter(|c| {
            c.split_once('=')
                .is_some_and(|(_, value)| !value.is_empty())
        })
        .map(str::to_owned)
        .collect()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Signs in through the embedded provider's form, as a browser would; the app's session cookie.
async fn sign_in(app: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .get(format!("{app}/auth/login?return_to=/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 302, "{:?}", login.headers());
    let transaction = cookies(&login).join("; ");
    let form = http.get(location(&login)).send().await.unwrap();
    let html = form.text().await.unwrap();
    let action = {
        let at = html.find("action=\"").expect("form action") + 8;
        html[at..at + html[at..].find('"').unwrap()].to_owned()
    };
    let mut fields: Vec<(String, String)> = html
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let name = &rest[..rest.find('"').unwrap()];
            let at = rest.find("value=\"").unwrap() + 7;
            let value = &rest[at..at + rest[at..].find('"').unwrap()];
            (
                name.to_owned(),
                value.replace("&amp;", "&").replace("&quot;", "\""),
            )
        })
        .collect();
    fields.push(("login".into(), "ada@example.com".into()));
    fields.push(("password".into(), "pw".into()));
    let issuer = reqwest::Url::parse(&location(&login)).unwrap();
    let approved = http
        .post(issuer.join(&action).unwrap())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&fields)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        approved.status().is_redirection(),
        "{:?}",
        approved.text().await
    );
    let callback = http
        .get(location(&approved))
        .header(reqwest::header::COOKIE, transaction)
        .send()
        .await
        .unwrap();
    if callback.status() != 302 {
        panic!("callback refused: {:?}", callback.text().await);
    }
    cookies(&callback)
        .into_iter()
        .filter(|c| !c.contains("_id") && !c.contains("_tx"))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn me_status(app: &str, session: &str) -> u16 {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{app}/me"))
        .header(reqwest::header::COOKIE, session)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The embedded provider keeps its port and key, and the app its cookie key: a session made
/// before a restart is still signed in after it.
#[tokio::test]
// The lock keeps other tests' quickstarts off the provider's port while this one runs; each
// test has its own runtime, so holding it across awaits blocks no task that would release it.
#[allow(clippy::await_holding_lock)]
async fn a_restart_with_the_same_cookie_key_keeps_the_session() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = format!("http://127.0.0.1:{port}");
    let key =
        base64::engine::general_purpose::STANDARD.encode(tower_oidc_auth::testing::cookie_key(3));
    let run = || {
        let mut cmd = quickstart();
        cmd.env("APP_URL", &app).env("AUTH_COOKIE_KEY", &key);
        started(&mut cmd)
    };
    let first = run();
    let session = sign_in(&app).await;
    assert!(!session.is_empty());
    assert_eq!(me_status(&app, &session).await, 200);
    drop(first);

    let _second = run();
    assert_eq!(
        me_status(&app, &session).await,
        200,
        "the session did not survive the restart"
    );
}

/// The quickstart serves its metrics at `/metrics` (Prometheus text, the layer's names), and on
/// loopback explains its refusals (`x-auth-refusal`). The values themselves are asserted
/// through a recorder in `tests/metrics.rs`, on the same router.
#[tokio::test]
#[allow(clippy::await_holding_lock)]
async fn metrics_are_served_and_refusals_explained_on_loopback() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let app = format!("http://127.0.0.1:{port}");
    let mut cmd = quickstart();
    cmd.env("APP_URL", &app);
    let _running = started(&mut cmd);
    let session = sign_in(&app).await;
    assert_eq!(me_status(&app, &session).await, 200);
    let client = reqwest::Client::new();
    let refused = client
        .get(format!("{app}/me"))
        .header("authorization", "Bearer x.y.z")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-auth-refusal"], "malformed_token");
    let metrics = client.get(format!("{app}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for line in [
        "oidc_logins_total{outcome=\"success\"} 1",
        "oidc_rejections_total{reason=\"malformed_token\"} 1",
        "oidc_provider_request_seconds",
    ] {
        assert!(text.contains(line), "{line} not in /metrics:\n{text}");
    }
}

/// `AUTH_SESSION_STORE=redis://..`: the browser's cookies for a session are under 200 bytes in
/// all, the session survives a restart of the app, and logout ends it.
#[tokio::test]
#[cfg_attr(
    not(redis_available),
    ignore = "set REDIS_URL to a Redis server to run"
)]
#[allow(clippy::await_holding_lock)]
async fn with_redis_sessions_the_cookie_is_small_and_survives_a_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL");
    let port = free_port();
    let app = format!("http://127.0.0.1:{port}");
    let key =
        base64::engine::general_purpose::STANDARD.encode(tower_oidc_auth::testing::cookie_key(4));
    let run = || {
        let mut cmd = quickstart();
        cmd.env("APP_URL", &app)
            .env("AUTH_COOKIE_KEY", &key)
            .env("AUTH_SESSION_STORE", &redis);
        started(&mut cmd)
    };
    let first = run();
    let session = sign_in(&app).await;
    assert!(
        !session.is_empty() && session.len() < 200,
        "{} bytes: {session}",
        session.len()
    );
    assert_eq!(me_status(&app, &session).await, 200);
    drop(first);
    let _second = run();
    assert_eq!(
        me_status(&app, &session).await,
        200,
        "the session did not survive the restart"
    );
    let logout = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{app}/auth/logout"))
        .header(reqwest::header::COOKIE, &session)
        .header(reqwest::header::ORIGIN, &app)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_redirection(), "{}", logout.status());
    assert_eq!(me_status(&app, &session).await, 401);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Redis server of this test's own, stopped when dropped.
struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = signal(&self.0, "CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
}

/// `/me` until it answers `want`, within `limit` (waiting for another process: Redis, or the
/// app's watch of it).
async fn me_becomes(app: &str, session: &str, want: u16, limit: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let got = tokio::time::timeout(limit, me_status(app, session))
            .await
            .unwrap_or(0);
        if got == want || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis stopped (SIGSTOP: the connection hangs, nothing is refused): a request with a session
/// answers 503 within 10 s, never "signed out"; the public page keeps working; resumed
/// (SIGCONT), the session is back.
#[tokio::test]
#[cfg_attr(
    not(redis_available),
    ignore = "set REDIS_URL to a Redis server to run"
)]
#[allow(clippy::await_holding_lock)]
async fn a_stopped_redis_gives_503_and_the_session_comes_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let redis_port = free_port();
    let redis = OwnRedis(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (installed by .ci/run)"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = free_port();
    let app = format!("http://127.0.0.1:{port}");
    let mut cmd = quickstart();
    cmd.env("APP_URL", &app).env(
        "AUTH_SESSION_STORE",
        format!("redis://127.0.0.1:{redis_port}"),
    );
    let _running = started(&mut cmd);
    let session = sign_in(&app).await;
    assert_eq!(me_status(&app, &session).await, 200);
    assert_eq!(me_status(&app, &session).await, 200);

    signal(&redis.0, "STOP").unwrap();
    let started_at = std::time::Instant::now();
    let status = me_becomes(&app, &session, 503, Duration::from_secs(10)).await;
    assert_eq!(status, 503, "after {:?}", started_at.elapsed());
    // Public routes do not need Redis.
    let home = reqwest::get(format!("{app}/")).await.unwrap();
    assert_eq!(home.status(), 200);

    signal(&redis.0, "CONT").unwrap();
    assert_eq!(
        me_becomes(&app, &session, 200, Duration::from_secs(10)).await,
        200,
        "the session did not come back"
    );
}

/// The quickstart's "your sessions" page (`AUTH_SESSION_STORE=memory`): two browsers signed in
/// are listed to each; one signs the other out.
#[tokio::test]
#[allow(clippy::await_holding_lock)]
async fn the_sessions_page_lists_and_ends_the_other_browsers() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let app = format!("http://127.0.0.1:{}", free_port());
    let mut cmd = quickstart();
    cmd.env("APP_URL", &app).env("AUTH_SESSION_STORE", "memory");
    let _running = started(&mut cmd);
    let first = sign_in(&app).await;
    let second = sign_in(&app).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{app}/sessions"))
        .header(reqwest::header::COOKIE, &first)
        .header(reqwest::header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert_eq!(html.matches("<li>").count(), 2, "{html}");
    assert!(html.contains("this browser"), "{html}");
    // From another site: refused.
    let forged = http
        .post(format!("{app}/sessions/end"))
        .header(reqwest::header::COOKIE, &first)
        .header("sec-fetch-site", "cross-site")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body("handle=others")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(me_status(&app, &second).await, 200);
    let ended = http
        .post(format!("{app}/sessions/end"))
        .header(reqwest::header::COOKIE, &first)
        .header("sec-fetch-site", "same-origin")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body("handle=others")
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_redirection(), "{}", ended.status());
    assert_eq!(me_status(&app, &second).await, 401);
    assert_eq!(me_status(&app, &first).await, 200);
}
