use super::api::{
    checked_id, scalekit_user_id, ApiPath, LIST_ORGANIZATIONS, LIST_ORGANIZATION_USERS, LIST_USERS,
    LIST_USER_SESSIONS,
};
use super::credentials::{token_answer, token_expiry};
use super::error::ManagementError;
use std::time::Duration;

use proptest::prelude::*;

proptest! {
    /// An id `checked_id` accepts stays exactly one path segment once in a URL: nothing
    /// resolved, decoded or cut off. Anything else is refused.
    #[test]
    fn accepted_ids_stay_one_path_segment(id in "\\PC{0,12}|[A-Za-z0-9_.%/;?#-]{0,12}") {
        let url = format!("https://env.example.com/api/v1/organizations/{id}/users");
        match checked_id("organization_id", &id) {
            Ok(checked) => {
                prop_assert_eq!(checked, id.as_str());
                let parsed = url::Url::parse(&url).unwrap();
                let expected = format!("/api/v1/organizations/{id}/users");
                prop_assert_eq!(parsed.path(), expected.as_str());
                prop_assert_eq!(parsed.query(), None);
                prop_assert_eq!(parsed.fragment(), None);
            }
            Err(ManagementError::InvalidId { name, id: refused }) => {
                prop_assert_eq!(name, "organization_id");
                prop_assert_eq!(refused, id);
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }
}

#[test]
fn ids_in_paths() {
    for good in [
        "usr_1",
        "org_59615193906282635",
        "ses_1234567890123456",
        "a",
        "A-z_9",
    ] {
        assert_eq!(checked_id("id", good).unwrap(), good);
    }
    for bad in [
        "", ".", "..", "a/b", "a%2F", "a b", "a;b", "a?b", "a#b", "\u{e9}", "a\0",
    ] {
        assert!(
            matches!(
                checked_id("id", bad),
                Err(ManagementError::InvalidId { .. })
            ),
            "{bad:?}"
        );
    }
    let path = ApiPath::new("/users")
        .id("user_id", "usr_1")
        .unwrap()
        .then("/sessions/revoke");
    assert_eq!(path.as_str(), "/users/usr_1/sessions/revoke");
    assert!(ApiPath::new("/users").id("user_id", "..").is_err());
}

/// An outside value in an error message is quoted, escaped and cut.
#[test]
fn errors_show_outside_values_briefly() {
    let long = "x".repeat(10_000);
    let message = checked_id("user_id", &format!("{long}/"))
        .unwrap_err()
        .to_string();
    assert!(message.len() < 200, "{message}");
    assert!(message.starts_with(&format!("invalid user_id \"{}\"...", "x".repeat(64))));
    let message = checked_id("user_id", "a\nb").unwrap_err().to_string();
    assert!(
        message.starts_with(r#"invalid user_id "a\nb":"#),
        "{message}"
    );
}

/// `sub`s of Scalekit's docs: Full-Stack Auth users (`usr_...`, developer-docs
/// `authenticate/fsa/session-token-claims.mdx`), modular SSO (`conn_...;...`,
/// `authenticate/sso/add-modular-sso.mdx`, `guides/idtoken-claims.mdx`,
/// `guides/user-auth/modular-social-logins.mdx`), M2M clients (`m2morg_...`,
/// `authenticate/m2m/api-auth-quickstart.mdx`).
#[test]
fn only_scalekit_user_ids_are_current_users() {
    assert_eq!(
        scalekit_user_id("usr_96194455173923084").unwrap(),
        "usr_96194455173923084"
    );
    for sub in [
        "conn_70087756662964366;dcc62570-6a5a-4819-b11b-d33d110c7716",
        "conn_17576372041941092;google-oauth2|104630259163176101050",
        "conn_92847563920187364;alice.smith@example.com",
        "m2morg_68315758685323697",
        "usr_1;x",
        "usr_",
        "",
    ] {
        match scalekit_user_id(sub) {
            Err(ManagementError::NotAScalekitUser { sub: s }) => assert_eq!(s, sub),
            other => panic!("{sub:?}: {other:?}"),
        }
    }
}

#[test]
fn page_size_bounds() {
    for (endpoint, ok, refused) in [
        (
            &LIST_USERS,
            &[10, 55, 100][..],
            &[0, 1, 9, 101, u32::MAX][..],
        ),
        (&LIST_ORGANIZATIONS, &[10, 100], &[0, 9, 101]),
        (&LIST_ORGANIZATION_USERS, &[1, 100], &[0, 101]),
        (&LIST_USER_SESSIONS, &[1, 100, u32::MAX], &[0]),
    ] {
        for &size in ok {
            assert!(
                endpoint.check(size).is_ok(),
                "{} {size}",
                endpoint.operation
            );
        }
        for &size in refused {
            assert!(
                matches!(
                    endpoint.check(size),
                    Err(ManagementError::InvalidPageSize { page_size, .. }) if page_size == size
                ),
                "{} {size}",
                endpoint.operation
            );
        }
    }
    assert_eq!(
        LIST_USER_SESSIONS.check(0).unwrap_err().to_string(),
        "page_size 0 is out of range for SessionService_GetUserSessions: it must be at least 1"
    );
}

/// Found by the `management_json` fuzz target: `"expires_in": 18446744073709551615` in the
/// token endpoint's answer made `Instant::now() + lifetime` panic.
#[test]
fn huge_token_lifetimes_do_not_overflow() {
    let body = br#"{"access_token":"t","expires_in":18446744073709551615}"#;
    let (_, expires_in) = token_answer(http::StatusCode::OK, body).unwrap();
    assert_eq!(expires_in, u64::MAX);
    let now = tokio::time::Instant::now();
    // Clamped to a day, less the 30 s margin.
    assert_eq!(
        token_expiry(now, expires_in),
        now + Duration::from_secs(24 * 3600 - 30)
    );
    assert_eq!(token_expiry(now, 300), now + Duration::from_secs(270));
    assert_eq!(token_expiry(now, 10), now + Duration::from_secs(9));
    assert_eq!(token_expiry(now, 0), now + Duration::from_secs(1));
}
