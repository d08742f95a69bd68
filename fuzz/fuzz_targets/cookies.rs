//! Cookie headers: parsing, chunk joining, opening, and the session JSON behind the seal.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_oidc_auth::__private::target_cookies(data);
});
