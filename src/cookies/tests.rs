use cookie::Key;
use http::{HeaderMap, HeaderValue};

use super::*;

fn codec(secure: bool) -> CookieCodec {
    CookieCodec::new(
        vec![Key::from(&[7u8; 64])],
        secure,
        "oidc_abcd",
        "/",
        "/auth",
    )
}

#[test]
fn names_and_prefixes() {
    let c = codec(true);
    assert_eq!(c.session.name, "__Host-oidc_abcd_s");
    assert_eq!(c.id_token.name, "__Secure-oidc_abcd_id");
    assert_eq!(c.tx_index.path, "/");
    assert_eq!(c.tx_index.name, "__Host-oidc_abcd_txi");
    assert_eq!(c.tx_prefix, "__Host-oidc_abcd_tx_");
    assert_eq!(c.tx_path, "/");
    let c = codec(false);
    assert_eq!(c.session.name, "oidc_abcd_s");
}

#[test]
fn seal_open_round_trip_and_binding_to_name() {
    let c = codec(false);
    let sealed = c.seal("a", "hello");
    assert_ne!(sealed, "hello");
    assert_eq!(c.open("a", &sealed).as_deref(), Some("hello"));
    assert_eq!(c.open("b", &sealed), None, "value moved to another cookie");
    let other = CookieCodec::new(vec![Key::from(&[8u8; 64])], false, "x", "/", "/auth");
    assert_eq!(other.open("a", &sealed), None, "foreign key");
}

#[test]
fn rotation_opens_with_old_keys() {
    let old = codec(false);
    let sealed = old.seal("a", "v");
    let new = CookieCodec::new(
        vec![Key::from(&[9u8; 64]), Key::from(&[7u8; 64])],
        false,
        "oidc_abcd",
        "/",
        "/auth",
    );
    assert_eq!(new.open("a", &sealed).as_deref(), Some("v"));
    assert_eq!(old.open("a", &new.seal("a", "w")), None);
}

/// Found by issue 14: a session larger than the read limit was written in 18 chunks and
/// read from at most 8. What fits is written and reads back; what does not writes nothing.
#[test]
fn only_what_can_be_read_is_written() {
    let c = codec(false);
    let mut out = Vec::new();
    let fits = "x".repeat(MAX_SEALED * 3 / 4 - 100);
    c.write_json(&c.session, &fits, 60, 0, &mut out).unwrap();
    assert_eq!(out.len(), MAX_CHUNKS);
    let header = out
        .iter()
        .map(|h| h.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, header.parse().unwrap());
    let read: String = c
        .read_json(&c.read(&headers), &c.session.name)
        .unwrap()
        .unwrap();
    assert_eq!(read, fits);

    let mut out = Vec::new();
    let too_large = "x".repeat(MAX_SEALED);
    let error = c
        .write_json(&c.session, &too_large, 60, 0, &mut out)
        .unwrap_err();
    assert!(out.is_empty(), "nothing written");
    assert!(error.sealed > MAX_SEALED);
    assert!(error.to_string().contains(&error.sealed.to_string()));
}

#[test]
fn chunking_round_trip_and_leftovers() {
    let c = codec(false);
    let big = "x".repeat(9000);
    let mut out = Vec::new();
    c.write_json(&c.session, &big, 60, 5, &mut out).unwrap();
    // 9000 chars of JSON seal to ~12 KB: 4 chunks set, chunk 4 deleted.
    let sets: Vec<String> = out.iter().map(|h| h.to_str().unwrap().to_owned()).collect();
    assert_eq!(sets.len(), 5);
    assert!(sets[4].starts_with("oidc_abcd_s.4=;"));
    let header = sets[..4]
        .iter()
        .map(|s| s.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, header.parse().unwrap());
    let cookies = c.read(&headers);
    assert_eq!(cookies.chunk_count(&c.session.name), 4);
    let back: String = c.read_json(&cookies, &c.session.name).unwrap().unwrap();
    assert_eq!(back, big);
    for s in &sets[..4] {
        assert!(s.len() < 4096);
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax"));
    }
}

#[test]
fn many_cookies_spill_past_the_inline_slots() {
    let header: Vec<String> = (0..12).map(|i| format!("oidc_c{i}=v{i}")).collect();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, header.join("; ").parse().unwrap());
    let c = RequestCookies::parse(&headers, "oidc_", "oidc_s");
    for i in 0..12 {
        assert_eq!(c.get(&format!("oidc_c{i}")), Some(format!("v{i}").as_str()));
    }
    assert_eq!(c.names_with_prefix("oidc_c1").count(), 3); // c1, c10, c11
}

#[test]
fn tossed_cookies_never_crowd_out_the_session() {
    let c = codec(true);
    let flood: Vec<String> = (0..100)
        .map(|i| format!("__Secure-oidc_abcd_x{i}=1; __t{i}=1"))
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::COOKIE,
        format!("{}; __Host-oidc_abcd_s=sess", flood.join("; "))
            .parse()
            .unwrap(),
    );
    let cookies = c.read(&headers);
    assert_eq!(cookies.get("__Host-oidc_abcd_s"), Some("sess"));
    assert_eq!(cookies.get("__t1"), None, "not ours");
}

#[test]
fn one_cookie_that_is_not_utf8_hides_only_itself() {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::COOKIE,
        HeaderValue::from_bytes(b"oidc_x=\xff\xfe; oidc_s=good").unwrap(),
    );
    let c = RequestCookies::parse(&headers, "oidc_", "oidc_s");
    assert_eq!(c.get("oidc_s"), Some("good"));
    assert_eq!(c.get("oidc_x"), None);
}

#[test]
fn parse_ignores_garbage() {
    let mut headers = HeaderMap::new();
    headers.append(
        http::header::COOKIE,
        "a=1; ;; =; oidc_x=\"q\"; junk".parse().unwrap(),
    );
    headers.append(
        http::header::COOKIE,
        HeaderValue::from_bytes(b"oidc_y=\xff").unwrap(),
    );
    let c = RequestCookies::parse(&headers, "oidc_", "oidc_s");
    assert_eq!(c.get("oidc_x"), Some("q"));
    assert_eq!(c.get("a"), None);
    assert_eq!(c.get("oidc_y"), None);
}
