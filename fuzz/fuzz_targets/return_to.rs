//! The return_to sanitiser: whatever it accepts must stay on the same origin.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_oidc_auth::__private::target_return_to(data);
});
