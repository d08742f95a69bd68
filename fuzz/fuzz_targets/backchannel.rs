//! The back-channel logout route: Content-Type, form body, logout token, and its claims past the
//! signature (see `target_backchannel` for the input layout).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_oidc_auth::__private::target_backchannel(data);
});
