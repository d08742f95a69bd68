//! Attacks on 19ba4b0: the Cookie header is split as bytes, only names are checked to be UTF-8,
//! and the verified-session cache is looked up by the fingerprint of the session's *bytes*
//! (`RequestCookies::sealed_bytes`) before the full path reads the first *text* values
//! (`RequestCookies::sealed`).
//!
//! Tests named `fixed_*` failed on the code under attack and showed a real defect, now fixed;
//! tests named `guard_*` record attacks that held.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_oidc_auth::testing::TestUser;

use crate::alloc::allocs;
use crate::helpers::*;

// The allocation counter per thread is `crate::alloc::allocs` (the binary's global allocator).

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The answer of `/` (`hello <sub>` or `anonymous`) and its status.
async fn who(app: &Router, cookie: &[u8]) -> (StatusCode, String) {
    let resp = call_bytes(app, cookie).await;
    let st = resp.status();
    (st, body_string(resp).await)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

struct Two {
    s: Setup,
    name: String,
    a: String,
    b: String,
}

/// A layer with Alice's and Bob's sessions (no refresh token); Alice's is cached.
async fn two() -> Two {
    let s = setup().await;
    let alice = session_no_rt(&s, &TestUser::new("alice"));
    let bob = session_no_rt(&s, &TestUser::new("bob"));
    let (name, a, _) = split_session(&alice);
    let (_, b, _) = split_session(&bob);
    for _ in 0..2 {
        assert_eq!(
            who(&s.app, format!("{name}={a}").as_bytes()).await.1,
            "hello alice"
        );
    }
    assert_eq!(s.auth.cache_stats().sessions, 1);
    Two { s, name, a, b }
}

// ---------------------------------------------------------------------------------------------
// Defects
// ---------------------------------------------------------------------------------------------

/// FIXED (cost, regression of 19ba4b0): one non-UTF-8 cookie of the session's name in front of
/// a valid session turns off the verified-session cache for that request, every time.
///
/// `resolve_now` looks up the fingerprint of `sealed_bytes` (the FIRST value of the name, text or
/// not). With `s=\xff; s=<valid>` that is `\xff`: a miss. It then reads the text value, sees it
/// differs, recomputes the digest from the text value... and goes straight to the full path
/// (base64, AES-GCM open, JSON, access-token verification) without looking the text digest up,
/// even though an entry for exactly that value is in the cache. The entry is re-inserted, and
/// the next identical request misses again. A non-text chunk 1 after a whole session
/// (`s=<valid>; s.1=\xff`: bytes `<valid>\xff`, text `<valid>`) does the same. Before 19ba4b0 the non-UTF-8 part was dropped while
/// parsing, so the session's text value was fingerprinted and hit.
///
/// Impact: any client can make each of its signed-in requests cost the full path (the cost the
/// cache exists to avoid; BENCHMARKS.md measures it) with a single valid session, by prefixing one
/// junk byte cookie: a cheap CPU amplification. A sibling subdomain that can toss a cookie of the
/// session's name (unprefixed or `__Secure-` session cookies) does the same to every victim
/// request. Identity is not affected (the full path answers correctly).
///
/// Checked: with `src/` of 19ba4b0^ this test passes (the junk twin costs what a hit costs).
///
/// Expected: the request with the junk cookie in front is answered from the cache like the same
/// session without it (about the same allocations). Actual: it takes the full path each time
/// (several times the allocations of a hit). Fixed in `resolve_now`: on a miss, the text value's
/// own fingerprint is looked up before the cookie is opened.
#[tokio::test]
async fn fixed_non_utf8_duplicate_in_front_disables_the_session_cache() {
    let t = two().await;
    let plain = format!("{}={}", t.name, t.a).into_bytes();
    let junked = cat(&[
        t.name.as_bytes(),
        b"=\xff; ",
        t.name.as_bytes(),
        b"=",
        t.a.as_bytes(),
    ]);
    // Both are Alice (the full path is right), warm both once.
    assert_eq!(who(&t.s.app, &plain).await.1, "hello alice");
    assert_eq!(who(&t.s.app, &junked).await.1, "hello alice");

    const N: u64 = 20;
    let before = allocs();
    for _ in 0..N {
        assert_eq!(who(&t.s.app, &plain).await.1, "hello alice");
    }
    let hit = (allocs() - before) / N;
    let before = allocs();
    for _ in 0..N {
        assert_eq!(who(&t.s.app, &junked).await.1, "hello alice");
    }
    let junk = (allocs() - before) / N;
    // Control: what the full path costs (a fresh seal of another session each time, never seen).
    let fresh: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let c = session_no_rt(&t.s, &TestUser::new(format!("u{i}")));
            let (_, v, _) = split_session(&c);
            format!("{}={v}", t.name).into_bytes()
        })
        .collect();
    let before = allocs();
    for c in &fresh {
        assert!(who(&t.s.app, c).await.1.starts_with("hello u"));
    }
    let full = (allocs() - before) / N;
    // The same with a non-text chunk 1 after the whole session (`s=<valid>; s.1=\xff`): the
    // bytes joined are `<valid>\xff`, the text read is `<valid>`.
    let chunk_junk = cat(&[
        t.name.as_bytes(),
        b"=",
        t.a.as_bytes(),
        b"; ",
        t.name.as_bytes(),
        b".1=\xff",
    ]);
    assert_eq!(who(&t.s.app, &chunk_junk).await.1, "hello alice");
    let before = allocs();
    for _ in 0..N {
        assert_eq!(who(&t.s.app, &chunk_junk).await.1, "hello alice");
    }
    let chunk = (allocs() - before) / N;
    eprintln!("allocations per request with a non-text chunk 1 after the session: {chunk}");
    eprintln!(
        "allocations per request: cached cookie {hit}, same cookie behind a \\xff twin {junk}, \
         full path (unseen cookie) {full}"
    );
    assert!(
        junk <= hit + hit / 2,
        "a non-UTF-8 twin in front of a cached session bypasses the cache: {junk} allocations \
         per request instead of {hit} (the full path every time)"
    );
}

// ---------------------------------------------------------------------------------------------
// Guards
// ---------------------------------------------------------------------------------------------

/// GUARD (goals 1-3): mixes of non-text and text duplicates, chunks, quoting, whitespace and
/// truncation around Alice's cached session, sent repeatedly (so both the miss and any later hit
/// are exercised). Every answer is what the full path (first text value of each name, chunks
/// joined) gives, and nothing short of her whole value, in order, reaches her entry.
#[tokio::test]
async fn guard_byte_level_mixes_answer_as_the_full_path() {
    let t = two().await;
    let n = t.name.as_bytes();
    let a = t.a.as_bytes();
    let b = t.b.as_bytes();
    let h = a.len() / 2;
    let (a1, a2) = a.split_at(h);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "junk twin first",
            cat(&[n, b"=\xff\xfe; ", n, b"=", a]),
            "hello alice",
        ),
        (
            "junk twin after",
            cat(&[n, b"=", a, b"; ", n, b"=\xff"]),
            "hello alice",
        ),
        (
            "re-chunked",
            cat(&[n, b"=", a1, b"; ", n, b".1=", a2]),
            "hello alice",
        ),
        (
            "empty chunk 1",
            cat(&[n, b"=", a, b"; ", n, b".1="]),
            "hello alice",
        ),
        (
            "junk chunk 1",
            cat(&[n, b"=", a, b"; ", n, b".1=\xff"]),
            "hello alice",
        ),
        (
            "junk chunk then real chunk",
            cat(&[n, b"=", a1, b"; ", n, b".1=\x80; ", n, b".1=", a2]),
            "hello alice",
        ),
        ("quoted", cat(&[n, b"=\"", a, b"\""]), "hello alice"),
        (
            "tabs and spaces",
            cat(&[b" \t", n, b" \t= \t", a, b" \t;"]),
            "hello alice",
        ),
        (
            "chunk +1",
            cat(&[n, b"=", a1, b"; ", n, b".+1=", a2]),
            "hello alice",
        ),
        (
            "chunk 01",
            cat(&[n, b"=", a1, b"; ", n, b".01=", a2]),
            "hello alice",
        ),
        // Not her whole value: never her.
        ("first half alone", cat(&[n, b"=", a1]), "anonymous"),
        ("second half alone", cat(&[n, b".1=", a2]), "anonymous"),
        (
            "chunks swapped",
            cat(&[n, b"=", a2, b"; ", n, b".1=", a1]),
            "anonymous",
        ),
        (
            "truncated by one",
            cat(&[n, b"=", &a[..a.len() - 1]]),
            "anonymous",
        ),
        (
            "junk byte appended",
            cat(&[n, b"=", a, b"\xff"]),
            "anonymous",
        ),
        // At the parent commit this was Alice: values were trimmed of Unicode whitespace
        // (`str::trim`); now only ASCII whitespace is trimmed. Stricter, and the same on both
        // paths.
        (
            "junk byte appended as text",
            cat(&[n, b"=", a, "\u{a0}".as_bytes()]),
            "anonymous",
        ),
        (
            "NBSP-padded (was trimmed before)",
            cat(&["\u{a0}".as_bytes(), n, b"=", a]),
            "anonymous",
        ),
        (
            "half with junk chunk",
            cat(&[n, b"=", a1, b"; ", n, b".1=\xff"]),
            "anonymous",
        ),
        (
            "chunk 2 without 1",
            cat(&[n, b"=", a1, b"; ", n, b".2=", a2]),
            "anonymous",
        ),
        // Bob's session with Alice's pieces around it.
        (
            "bob first",
            cat(&[n, b"=", b, b"; ", n, b"=", a]),
            "hello bob",
        ),
        (
            "bob, alice as chunk",
            cat(&[n, b"=", b, b"; ", n, b".1=", a]),
            "anonymous",
        ),
        (
            "junk, bob, alice",
            cat(&[n, b"=\xff; ", n, b"=", b, b"; ", n, b"=", a]),
            "hello bob",
        ),
        (
            "alice half, bob chunk",
            cat(&[n, b"=", a1, b"; ", n, b".1=", b]),
            "anonymous",
        ),
    ];
    for round in 0..3 {
        for (what, cookie, want) in &cases {
            let (st, body) = who(&t.s.app, cookie).await;
            assert_eq!(st, StatusCode::OK, "{what} (round {round})");
            assert_eq!(&body, want, "{what} (round {round})");
        }
        // Her own cookie is still hers between rounds.
        assert_eq!(
            who(&t.s.app, format!("{}={}", t.name, t.a).as_bytes())
                .await
                .1,
            "hello alice"
        );
    }
}

/// GUARD (goal 3): the same mixes through `/me` (which requires a session): signed-in and
/// anonymous agree with `/`, i.e. the cache and full path agree on 200 vs 401.
#[tokio::test]
async fn guard_me_agrees_with_root_for_mixed_cookies() {
    let t = two().await;
    let n = t.name.as_bytes();
    let a = t.a.as_bytes();
    let h = a.len() / 2;
    let cookies = [
        cat(&[n, b"=\xff; ", n, b"=", a]),
        cat(&[n, b"=", &a[..h], b"; ", n, b".1=", &a[h..]]),
        cat(&[n, b"=", &a[..h], b"; ", n, b".1=\xff"]),
        cat(&[n, b"=", a, b"; ", n, b".1=\xff"]),
    ];
    for cookie in &cookies {
        for _ in 0..2 {
            let root = who(&t.s.app, cookie).await.1;
            let me =
                t.s.app
                    .clone()
                    .oneshot(request_bytes("/me", cookie))
                    .await
                    .unwrap();
            let signed_in = root.starts_with("hello ");
            assert_eq!(
                me.status() == StatusCode::OK,
                signed_in,
                "/ said {root:?}, /me said {}",
                me.status()
            );
        }
    }
}

/// GUARD (goal 4): crafted headers do not panic or 500, and work stays linear: a megabyte of `;`,
/// of `=`-less parts, of huge and non-UTF-8 names, thousands of chunks and duplicates, chunk
/// indices that overflow `usize`, lone separators.
#[tokio::test]
async fn guard_crafted_headers_no_panic_bounded_work() {
    let t = two().await;
    let n = t.name.as_bytes();
    let a = t.a.as_bytes();
    let mb = 1 << 20;
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "anonymous"),
        ("lone ;", b";".to_vec(), "anonymous"),
        ("lone =", b"=".to_vec(), "anonymous"),
        ("name only", n.to_vec(), "anonymous"),
        ("name=", cat(&[n, b"="]), "anonymous"),
        ("=value", cat(&[b"=", a]), "anonymous"),
        ("non-UTF-8 name", cat(&[b"\xff", n, b"=", a]), "anonymous"),
        ("non-UTF-8 name suffix", cat(&[n, b"\xff=", a]), "anonymous"),
        ("quote only", cat(&[n, b"=\""]), "anonymous"),
        ("many ;", vec![b';'; mb], "anonymous"),
        ("many = less", b"x;".repeat(mb / 2), "anonymous"),
        ("many =", vec![b'='; mb], "anonymous"),
        ("many \\xff", vec![0xff; mb], "anonymous"),
        ("huge name", cat(&[&vec![b'a'; mb], b"=1"]), "anonymous"),
        (
            "huge our name",
            cat(&[n, &vec![b'a'; mb], b"=1"]),
            "anonymous",
        ),
        (
            "overflowing chunk index",
            cat(&[
                n,
                b"=",
                a,
                b"; ",
                n,
                b".18446744073709551616=x; ",
                n,
                b".99999999999999999999999=y",
            ]),
            "hello alice",
        ),
        (
            "huge chunk index digits",
            cat(&[n, b"=", a, b"; ", n, b".", &vec![b'0'; mb], b"1=x"]),
            "anonymous",
        ),
    ];
    // Her session, then thousands of non-text duplicates of its chunks.
    let mut dups = cat(&[n, b"=", a, b"; "]);
    for i in 0..5000 {
        dups.extend_from_slice(n);
        dups.extend_from_slice(format!(".{}=", i % 9).as_bytes());
        dups.extend_from_slice(b"\xff; ");
    }
    cases.push(("hers then 5000 junk chunks", dups, "hello alice"));
    let mut many_ours = Vec::new();
    for i in 0..20000 {
        many_ours.extend_from_slice(format!("{}x{i}=", t.name).as_bytes());
        many_ours.extend_from_slice(b"\xff;");
    }
    cases.push(("20000 of our names, non-text", many_ours, "anonymous"));

    for (what, cookie, want) in &cases {
        let started = Instant::now();
        let (st, body) = who(&t.s.app, cookie).await;
        let took = started.elapsed();
        assert_eq!(st, StatusCode::OK, "{what}");
        assert_eq!(&body, want, "{what}");
        assert!(
            took < Duration::from_secs(5),
            "{what}: {took:?} for {} bytes",
            cookie.len()
        );
    }
}

/// GUARD (goal 5): a flood of our cookie names with non-UTF-8 values (new: such values are now
/// kept, and count toward the 64 kept names and the session's extra budget) hides the session
/// exactly when the same flood with text values does (which was possible before 19ba4b0 too):
/// non-UTF-8 values open no new way to crowd the session out.
///
/// (At the parent commit non-UTF-8 parts were dropped while parsing, so a non-text flood hid
/// nothing; the text flood hid the session there too, so the capability is not new.)
///
/// (Note, not new: with an unprefixed or `__Secure-` session name, 64 of our names plus 8 names
/// starting with the session's name, tossed in front, hide the session; so does one text twin
/// of the session's name. With the default `__Host-` session name neither can be tossed.)
#[tokio::test]
async fn guard_non_utf8_flood_crowds_out_no_more_than_text_flood() {
    let t = two().await;
    let n = &t.name;
    let app_prefix = n.strip_suffix("_s").unwrap();
    let flood = |value: &[u8], ours: usize, priority: usize| {
        let mut v = Vec::new();
        for i in 0..ours {
            v.extend_from_slice(format!("{app_prefix}_z{i}=").as_bytes());
            v.extend_from_slice(value);
            v.extend_from_slice(b"; ");
        }
        for i in 0..priority {
            v.extend_from_slice(format!("{n}q{i}=").as_bytes());
            v.extend_from_slice(value);
            v.extend_from_slice(b"; ");
        }
        v.extend_from_slice(format!("{n}={}", t.a).as_bytes());
        v
    };
    for (ours, priority) in [
        (0, 0),
        (63, 0),
        (64, 0),
        (200, 0),
        (64, 7),
        (64, 8),
        (200, 20),
    ] {
        let text = who(&t.s.app, &flood(b"1", ours, priority)).await.1;
        let bytes = who(&t.s.app, &flood(b"\xff", ours, priority)).await.1;
        assert_eq!(
            text, bytes,
            "{ours} of our names and {priority} priority names in front"
        );
    }
    // Plain floods of other apps' cookies never hide it.
    let mut other = b"a=\xff; ".repeat(10000);
    other.extend_from_slice(format!("{n}={}", t.a).as_bytes());
    assert_eq!(who(&t.s.app, &other).await.1, "hello alice");
}

/// GUARD (goal 1): Bob (the attacker) knows his own cookie and can put anything around it; a
/// victim's cached entry is never reached by his values, and his answers never leak into hers,
/// whether his bytes or the victim's come first.
#[tokio::test]
async fn guard_tossed_attacker_session_never_reads_victims_entry() {
    let t = two().await;
    let n = t.name.as_bytes();
    let a = t.a.as_bytes();
    let b = t.b.as_bytes();
    // Bob's cookie with Alice's value as further chunks he cannot know fully: only prefixes of it.
    for cut in [1, 10, a.len() / 2, a.len() - 1] {
        let c = cat(&[
            n,
            b"=",
            &a[..cut],
            b"; ",
            n,
            b".1=",
            &a[cut..cut.min(a.len())],
        ]);
        let _ = who(&t.s.app, &c).await;
        let (_, body) = who(&t.s.app, &cat(&[n, b"=", b, b"; ", n, b".1=", &a[cut..]])).await;
        assert_ne!(body, "hello alice", "cut {cut}");
    }
    // Victim's request with Bob's non-text junk in front, and after: Alice.
    for _ in 0..3 {
        let (_, body) = who(&t.s.app, &cat(&[n, b"=\xff", b, b"; ", n, b"=", a])).await;
        assert_eq!(body, "hello alice");
        let (_, body) = who(&t.s.app, &cat(&[n, b"=", a, b"; ", n, b"=\xff", b])).await;
        assert_eq!(body, "hello alice");
    }
    // Bob's own cookie stays Bob.
    assert_eq!(who(&t.s.app, &cat(&[n, b"=", b])).await.1, "hello bob");
}

/// GUARD: the same mixes split over several `Cookie` headers (as HTTP/2 sends them): junk in one
/// header and the session in another, or a session's chunks in different headers, answer as in
/// one header; junk alone in a header hides nothing.
#[tokio::test]
async fn guard_multiple_cookie_headers() {
    let t = two().await;
    let n = t.name.as_bytes();
    let a = t.a.as_bytes();
    let h = a.len() / 2;
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (vec![cat(&[n, b"=\xff"]), cat(&[n, b"=", a])], "hello alice"),
        (
            vec![cat(&[n, b"=", &a[..h]]), cat(&[n, b".1=", &a[h..]])],
            "hello alice",
        ),
        (
            vec![
                cat(&[n, b"=", &a[..h]]),
                cat(&[n, b".1=\xff"]),
                cat(&[n, b".1=", &a[h..]]),
            ],
            "hello alice",
        ),
        (
            vec![b"\xff\xff=\xff".to_vec(), cat(&[n, b"=", a])],
            "hello alice",
        ),
        (
            vec![cat(&[n, b"=", &a[..h]]), cat(&[n, b".1=\xff"])],
            "anonymous",
        ),
    ];
    for _ in 0..2 {
        for (i, (headers, want)) in cases.iter().enumerate() {
            let mut req = Request::get("/").body(Body::empty()).unwrap();
            for v in headers {
                req.headers_mut()
                    .append(header::COOKIE, http::HeaderValue::from_bytes(v).unwrap());
            }
            let resp = t.s.app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "case {i}");
            assert_eq!(&body_string(resp).await, want, "case {i}");
        }
    }
}
