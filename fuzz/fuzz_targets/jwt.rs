//! JWT header and claims parsing and checks in the verifier.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        tower_oidc_auth::__private::fuzz_jwt(token);
    }
    tower_oidc_auth::__private::fuzz_claims(data);
});
