use super::deliveries::{Begin, Deliveries, MAX_DELIVERIES, REMEMBER_SECS};
use super::signature::{sign_webhook, verify_webhook_at, WebhookError, WebhookSecret};
use super::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    h.insert("webhook-signature", sig.parse().unwrap());
    h
}

#[test]
fn good_bad_stale_and_multiple_signatures() {
    let body = br#"{"id":"evt_1","type":"organization.created","data":{}}"#;
    let sig = sign_webhook(SECRET, "msg_1", 1000, body).unwrap();
    assert_eq!(
        verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), body, 1000),
        Ok(())
    );
    // Tampered body, other id, other secret.
    assert_eq!(
        verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), b"{}", 1000),
        Err(WebhookError::Signature)
    );
    assert_eq!(
        verify_webhook_at(SECRET, &headers("msg_2", 1000, &sig), body, 1000),
        Err(WebhookError::Signature)
    );
    assert_eq!(
        verify_webhook_at(
            "whsec_b3RoZXJvdGhlcm90aGVyb3RoZXI=",
            &headers("msg_1", 1000, &sig),
            body,
            1000
        ),
        Err(WebhookError::Signature)
    );
    // Stale and future timestamps, at the edge and past it.
    assert_eq!(
        verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), body, 1300),
        Ok(())
    );
    assert_eq!(
        verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), body, 1301),
        Err(WebhookError::Timestamp)
    );
    assert_eq!(
        verify_webhook_at(SECRET, &headers("msg_1", 1000, &sig), body, 699),
        Err(WebhookError::Timestamp)
    );
    // Several signatures (key rotation): any v1 match is enough; other versions ignored.
    let multi = format!("v1,aW52YWxpZA== v2,xyz {sig}");
    assert_eq!(
        verify_webhook_at(SECRET, &headers("msg_1", 1000, &multi), body, 1000),
        Ok(())
    );
    let none = "v1,aW52YWxpZA== v1a,whatever";
    assert_eq!(
        verify_webhook_at(SECRET, &headers("msg_1", 1000, none), body, 1000),
        Err(WebhookError::Signature)
    );
    // Missing headers and bad secrets.
    assert_eq!(
        verify_webhook_at(SECRET, &HeaderMap::new(), body, 1000),
        Err(WebhookError::MissingHeader("webhook-id"))
    );
    assert_eq!(
        verify_webhook_at("whsec_***", &headers("msg_1", 1000, &sig), body, 1000),
        Err(WebhookError::BadSecret)
    );
}

#[test]
fn deliveries_are_remembered_for_the_window_and_failures_forgotten() {
    let log = Deliveries::default();
    assert_eq!(log.begin("a", 1000), Begin::New);
    assert_eq!(log.begin("a", 1000), Begin::InFlight);
    log.finish("a", true);
    assert_eq!(log.begin("a", 1000 + REMEMBER_SECS - 1), Begin::Duplicate);
    assert_eq!(log.begin("a", 1000 + REMEMBER_SECS), Begin::New);
    // A failed delivery is forgotten: its retry runs again.
    assert_eq!(log.begin("b", 2000), Begin::New);
    log.finish("b", false);
    assert_eq!(log.begin("b", 2001), Begin::New);
    // The stale queue slot of the first "b" does not forget the second one early.
    log.finish("b", true);
    assert_eq!(log.begin("b", 2000 + REMEMBER_SECS), Begin::Duplicate);
}

#[test]
fn a_full_log_refuses_rather_than_forgets() {
    let log = Deliveries::default();
    for i in 0..MAX_DELIVERIES {
        assert_eq!(log.begin(&i.to_string(), 0), Begin::New);
    }
    assert_eq!(log.begin("late", 1), Begin::Full);
    assert_eq!(log.begin("0", 1), Begin::InFlight, "nothing was evicted");
    assert_eq!(
        log.begin("late", REMEMBER_SECS),
        Begin::New,
        "room once the window passed"
    );
}

#[test]
fn signature_header_limits() {
    let body = br#"{"id":"evt_1","type":"x"}"#;
    let good = sign_webhook(SECRET, "msg_1", 1000, body).unwrap();
    let at = |sig: &str| verify_webhook_at(SECRET, &headers("msg_1", 1000, sig), body, 1000);
    let within = format!(
        "{} {good}",
        vec!["v1,AAAA"; MAX_WEBHOOK_SIGNATURES - 1].join(" ")
    );
    assert_eq!(at(&within), Ok(()));
    let over = format!(
        "{} {good}",
        vec!["v1,AAAA"; MAX_WEBHOOK_SIGNATURES].join(" ")
    );
    assert_eq!(
        at(&over),
        Err(WebhookError::Malformed("too many signatures"))
    );
    let long = format!("{good} {}", " ".repeat(MAX_WEBHOOK_SIGNATURE_HEADER));
    assert_eq!(
        at(&long),
        Err(WebhookError::Malformed("webhook-signature is too long"))
    );
    // Truncated, padded or over-long candidates never match.
    for bad in [
        &good[..good.len() - 2],
        &format!("{good}AA"),
        "v1,",
        "v1,====",
    ] {
        assert_eq!(at(bad), Err(WebhookError::Signature), "{bad}");
    }
}

#[test]
fn secrets_are_checked_once() {
    for bad in ["", "whsec_", "whsec_***", "whsec_c2hvcnQ=", "not base64"] {
        assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
    }
    assert!(WebhookSecret::parse(SECRET).is_ok());
    // The prefix is optional, as in the Standard Webhooks libraries.
    assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    assert_eq!(
        format!("{:?}", WebhookSecret::parse(SECRET).unwrap()),
        "WebhookSecret(REDACTED)"
    );
}

/// Found by the `webhook` fuzz target: `now - ts` overflowed (a panic in debug builds) for a
/// timestamp far in the past or future. Such timestamps are refused like any stale one. In
/// release builds `ts = now - 2^63` wrapped to `i64::MIN`, whose `abs()` stays negative: the
/// tolerance check passed.
#[test]
fn extreme_timestamps_are_refused_without_overflow() {
    let body = br#"{"id":"evt_1","type":"organization.created"}"#;
    let (min, max) = (i64::MIN, i64::MAX);
    let cases = [
        (min, 1_700_000_000, false),
        (min + 1, 1_700_000_000, false),
        (min + 1_700_000_000, 1_700_000_000, false),
        (max, 1_700_000_000, false),
        (max, 0, false),
        (min, max, false),
        (max, min, false),
        (min, min, true),
        (min + 300, min, true),
        (max - 300, max, true),
    ];
    for (ts, now, ok) in cases {
        let sig = sign_webhook(SECRET, "msg_1", ts, body).unwrap();
        let expected = if ok {
            Ok(())
        } else {
            Err(WebhookError::Timestamp)
        };
        assert_eq!(
            verify_webhook_at(SECRET, &headers("msg_1", ts, &sig), body, now),
            expected,
            "ts {ts}, now {now}"
        );
    }
}
