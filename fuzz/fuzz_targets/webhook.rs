//! The webhook route: Standard Webhooks headers, signature check, and the event JSON past the
//! HMAC (see `target_webhook` for the input layout).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_oidc_auth::__private::target_webhook(data);
});
