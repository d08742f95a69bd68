//! The callback / login query string parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_oidc_auth::__private::target_callback_query(data);
});
