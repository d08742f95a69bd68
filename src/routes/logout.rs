//! `GET|POST /auth/logout`: clear every cookie, then RP-initiated logout at the provider.
//!
//! Only for requests from the app itself ([`is_same_origin`]): a cross-site link or form must
//! not end the session, nor the provider's single sign-on session behind it. Any other request
//! gets a confirmation page whose button POSTs here from the app's own origin.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

use crate::layer::Shared;
use crate::responses::{confirm_logout, redirect, Page};
use crate::revocation::RevocationKey;
use crate::same_origin::is_same_origin;
use crate::session::SessionData;

pub(crate) async fn logout(shared: Arc<Shared>, parts: Parts) -> Page {
    let codec = &shared.cookies;
    let settings = &shared.settings;
    if !is_same_origin(&parts.headers, &settings.origin) {
        tracing::debug!(method = %parts.method, "logout not from the app's origin: asking first");
        return confirm_logout(&settings.logout_path, &settings.default_return);
    }
    let cookies = codec.read(&parts.headers);
    // Revoke the session itself, so a request still in flight (a refresh racing this logout)
    // cannot set its cookies again: they would be refused on their next use.
    if let Some(Ok(session)) = codec.read_json::<SessionData>(&cookies, &codec.session.name) {
        let now = shared.clock.now();
        let ttl = Duration::from_secs(settings.session_max_age.max(0) as u64);
        let mut keys = Vec::new();
        if let Some(lid) = &session.ids.lid {
            keys.push(RevocationKey::local(lid));
        }
        if let Some(sid) = &session.ids.sid {
            keys.push(RevocationKey::session(&shared.meta.issuer, sid));
        }
        for key in keys {
            let revoke = shared.revocations.revoke(key, now, ttl);
            match tokio::time::timeout(Duration::from_secs(2), revoke).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "could not record the logout"),
                Err(_) => tracing::warn!("recording the logout timed out"),
            }
        }
    }
    // Read the ID token before clearing anything: it is the provider's logout hint.
    let id_token = match codec.read_json::<String>(&cookies, &codec.id_token.name) {
        Some(Ok(t)) => Some(t),
        _ => None,
    };
    let mut set_cookies = Vec::new();
    for slot in [&codec.session, &codec.id_token, &codec.tx_index] {
        codec.clear_slot(slot, cookies.chunk_count(&slot.name), &mut set_cookies);
    }
    // Transaction cookies live on the callback path; those visible here are cleared too.
    let tx_names: Vec<&str> = cookies.names_with_prefix(&codec.tx_prefix).collect();
    for name in tx_names {
        set_cookies.push(codec.clear(name, &codec.tx_path));
    }
    let location = match shared
        .meta
        .end_session_endpoint
        .as_deref()
        .and_then(|e| url::Url::parse(e).ok())
    {
        Some(mut end) => {
            {
                let mut q = end.query_pairs_mut();
                if let Some(hint) = &id_token {
                    q.append_pair("id_token_hint", hint);
                }
                q.append_pair("post_logout_redirect_uri", &settings.post_logout_url)
                    .append_pair("client_id", &settings.client_id);
            }
            end.to_string()
        }
        None => settings.post_logout_url.clone(),
    };
    tracing::debug!("signed out");
    redirect(&location, set_cookies)
}
