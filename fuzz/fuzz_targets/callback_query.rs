//! The callback / login query string parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        tower_oidc_auth::__private::fuzz_query(query);
    }
});
