//! JWT header and claims parsing and checks in the verifier.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_oidc_auth::__private::target_jwt(data);
});
