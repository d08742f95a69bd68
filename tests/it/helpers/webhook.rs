//! Scalekit webhooks as Scalekit sends them: the example payloads of Scalekit's OpenAPI
//! specification (`tests/fixtures/scalekit-webhook-examples.json`, extracted verbatim from its
//! `webhooks:` section), signed per Standard Webhooks.

use axum::body::Body;
use http::{header, Request};
use serde_json::Value;
use tower_oidc_auth::sign_webhook;

/// A secret in the shape Scalekit's dashboard shows (`whsec_` + base64 of 24 bytes, as in the
/// Node SDK's docs for `verifyWebhookPayload`). Not a real secret.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A Standard Webhooks message id as Scalekit/Svix make them.
pub const WEBHOOK_MSG: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";

/// The example payload of every webhook event in the specification, by event type.
pub fn webhook_examples() -> serde_json::Map<String, Value> {
    let text = include_str!("../../fixtures/scalekit-webhook-examples.json");
    match serde_json::from_str(text).unwrap() {
        Value::Object(map) => map,
        _ => panic!("fixture is a map of event type to example"),
    }
}

/// The specification's example of the event type `kind`.
pub fn webhook_example(kind: &str) -> Value {
    webhook_examples()[kind].clone()
}

/// The spec's `user.logout` example with `data.user_session.session_id` set to `sid`.
pub fn user_logout(sid: &str) -> String {
    let mut event = webhook_example("user.logout");
    event["data"]["user_session"]["session_id"] = Value::from(sid);
    serde_json::to_string(&event).unwrap()
}

/// `POST /auth/webhook` of `body`, signed with [`WEBHOOK_SECRET`] at `ts`.
pub fn signed_webhook(id: &str, ts: i64, body: &str) -> Request<Body> {
    let sig = sign_webhook(WEBHOOK_SECRET, id, ts, body.as_bytes()).unwrap();
    raw_webhook(id, &ts.to_string(), &sig, body)
}

/// `POST /auth/webhook` with these Standard Webhooks headers, as given.
pub fn raw_webhook(id: &str, ts: &str, sig: &str, body: &str) -> Request<Body> {
    Request::post("/auth/webhook")
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts)
        .header("webhook-signature", sig)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// RFC 3339 (UTC) for whole seconds since the epoch (civil-from-days, H. Hinnant).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The specification's `user.logout` example for `sid`, which occurred at `occurred_at`.
pub fn user_logout_event(sid: &str, occurred_at: i64) -> String {
    let mut event = webhook_example("user.logout");
    event["data"]["user_session"]["session_id"] = Value::from(sid);
    event["occurred_at"] = Value::from(rfc3339(occurred_at));
    serde_json::to_string(&event).unwrap()
}
