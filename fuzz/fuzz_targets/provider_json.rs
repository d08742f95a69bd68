//! The provider's JSON: discovery, JWKS, token and OAuth error responses, Cache-Control (see
//! `target_provider_json` for the input layout).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_oidc_auth::__private::target_provider_json(data);
});
