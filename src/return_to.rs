//! Where to send the browser after login: same-origin absolute paths only.

/// The longest accepted return target, in bytes.
pub(crate) const MAX_RETURN_TO: usize = 2048;

/// Returns `target` if it is a safe same-origin path (with optional query and fragment),
/// otherwise `None`.
///
/// Rejected: anything not starting with a single `/`; scheme-relative `//host`; backslashes
/// anywhere (browsers read `/\host` as `//host`); control characters and whitespace; the same
/// tricks percent-encoded (checked after each of up to three rounds of decoding); over 2 KB.
pub(crate) fn sanitize(target: &str) -> Option<&str> {
    if target.len() > MAX_RETURN_TO || !is_safe_path(target) {
        return None;
    }
    let mut current = target.to_owned();
    for _ in 0..3 {
        let decoded = percent_decode(&current)?;
        if decoded == current {
            break;
        }
        if !is_safe_path(&decoded) {
            return None;
        }
        current = decoded;
    }
    Some(target)
}

fn is_safe_path(p: &str) -> bool {
    let bytes = p.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    if matches!(bytes.get(1), Some(b'/') | Some(b'\\')) {
        return false;
    }
    !p.chars()
        .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

/// Percent-decodes; `None` when the bytes are not UTF-8 (an attempt to confuse, refused).
fn percent_decode(s: &str) -> Option<String> {
    let bytes: Vec<u8> =
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn accepts_same_origin_paths() {
        for ok in [
            "/",
            "/me",
            "/a/b?x=1&y=%20z#frag",
            "/search?q=a+b",
            "/%7Euser",
        ] {
            assert_eq!(sanitize(ok), Some(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_open_redirects() {
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "http:/evil.com",
            "javascript:alert(1)",
            "evil.com",
            "",
            "/%2F%2Fevil.com",
            "%2F%2Fevil.com",
            "/%2fevil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "/%252F%252Fevil.com",
            "/a\\b",
            "/\tevil",
            "/a\nb",
            "/a%0d%0aSet-Cookie:x=y",
            "/ evil",
        ] {
            assert_eq!(sanitize(bad), None, "{bad:?}");
        }
        assert_eq!(sanitize(&format!("/{}", "a".repeat(2048))), None);
    }
}
