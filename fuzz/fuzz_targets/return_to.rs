//! The return_to sanitiser: whatever it accepts must stay on the same origin.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(accepted) = tower_oidc_auth::__private::fuzz_return_to(target) {
        let base = url::Url::parse("https://app.example/").unwrap();
        let joined = base.join(accepted).expect("an accepted target is a valid relative URL");
        assert_eq!(joined.origin(), base.origin(), "{accepted:?} left the origin");
    }
});
