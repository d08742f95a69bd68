//! Random tokens: state, nonce, PKCE verifier, session ids.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// 256 random bits from the operating system, base64url without padding (43 characters).
pub(crate) fn random_token() -> String {
    let mut buf = [0u8; 32];
    // The OS RNG failing means the machine cannot do cryptography at all.
    getrandom::fill(&mut buf).expect("operating system random number generator failed");
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_distinct_and_urlsafe() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
