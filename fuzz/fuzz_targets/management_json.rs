//! Management API answers: errors, users, organizations, roles, sessions, pages, tokens.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_oidc_auth::__private::target_management_json(data);
});
