//! Lets the Redis integration tests run when `REDIS_URL` is set at build time, and be reported
//! as ignored (not passed) when it is not.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(redis_available)");
    println!("cargo::rerun-if-env-changed=REDIS_URL");
    if std::env::var("REDIS_URL").is_ok_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=redis_available");
    }
}
