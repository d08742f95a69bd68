//! `GET|POST /auth/logout`: clear every cookie, then RP-initiated logout at the provider.
//!
//! Only for requests from the app itself (see `crate::same_origin`): a same-origin POST, or a
//! GET that is a same-origin navigation (the app's own link). A cross-site link or form must
//! not end the session, nor the provider's single sign-on session behind it. Any other request
//! gets a confirmation page whose button POSTs here from the app's own origin.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

use crate::error::Chain;
use crate::responses::{confirm_logout, redirect, Page};
use crate::revocation::RevocationKey;
use crate::same_origin::{is_same_origin, is_same_origin_navigation};
use crate::session::SessionData;
use crate::state::Shared;

pub(crate) async fn logout(shared: Arc<Shared>, parts: Parts) -> Page {
    let codec = &shared.cookies;
    let settings = &shared.settings;
    // A GET must also be a navigation: same-origin content (`<img src="/auth/logout">` in a
    // user's post) must not log its viewers out.
    let from_the_app = if parts.method == http::Method::POST {
        is_same_origin(&parts.headers, &settings.origin)
    } else {
        is_same_origin_navigation(&parts.headers, &settings.origin)
    };
    if !from_the_app {
        tracing::debug!(method = %parts.method, "logout not from the app's origin: asking first");
        return confirm_logout(
            &*shared.responses,
            &settings.logout_path,
            &settings.default_return,
        );
    }
    let cookies = codec.read(&parts.headers);
    // Revoke the session itself, so a request still in flight (a refresh racing this logout)
    // cannot set its cookies again: they would be refused on their next use.
    let mut session = match codec.read_json::<SessionData>(&cookies, &codec.session.name) {
        Some(Ok(session)) => Some(session),
        _ => None,
    };
    // Store mode: the cookie holds the record's id. The record is read for its tokens and
    // deleted: the session ends on every instance at once.
    let stored_id = match (&session, &shared.store) {
        (None, Some(_)) => cookies
            .sealed(&codec.session.name)
            .and_then(|sealed| codec.open(&codec.session.name, &sealed))
            .and_then(|plain| crate::session::stored::parse_ref(&plain)),
        _ => None,
    };
    if let Some(id) = &stored_id {
        // A logout that cannot reach the store does not pretend: the session would outlive it
        // (a copy of the cookie, another instance). The browser keeps its cookie and is asked
        // to try again.
        // Revoked first (other instances drop their remembered copy through it), then
        // deleted; either failing, nothing is claimed done.
        let ended = match crate::session::stored::load(&shared, id).await {
            Ok(found) => {
                session = found.map(|(open, _)| open.data);
                match &session {
                    Some(data) => crate::session::stored::revoke_local(&shared, &data.ids).await,
                    None => Ok(()),
                }
            }
            Err(error) => Err(error),
        };
        let ended = match ended {
            Ok(()) => crate::session::stored::delete(&shared, id)
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = ended {
            tracing::error!(%error, "session store unavailable at logout; not signed out");
            let page = crate::responses::ErrorPage::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                crate::responses::ErrorReason::SessionStoreUnavailable,
                "Sign-out failed",
                "The application could not end your session just now. Please try again in a \
                 moment.",
                None,
            );
            return crate::responses::error_page(
                &*shared.responses,
                &settings.default_return,
                &page,
                Vec::new(),
            );
        }
    }
    // A stored session was revoked above, before its record was deleted.
    if let (Some(session), None) = (&session, &stored_id) {
        let now = shared.clock.now();
        // This session only, by its own id: the provider's `sid` is not revoked here. The
        // provider's session may survive this logout (the user cancels its sign-out prompt, or
        // end_session fails), and a later single sign-on with the same `sid` is a new session.
        // A session sealed before local ids existed has only its `sid`; a `sid` revocation ends
        // only sessions that began no later than it, never later sign-ins.
        let key = match (&session.ids.lid, &session.ids.sid) {
            (Some(lid), _) => Some(RevocationKey::local(lid)),
            (None, Some(sid)) => Some(RevocationKey::session(&shared.meta.issuer, sid)),
            (None, None) => None,
        };
        if let Some(key) = key {
            let begun = if session.ids.login > 0 {
                session.ids.login
            } else {
                now
            };
            let ttl = settings.revocation_lifetime(begun, now);
            let revoke = shared.revocations.revoke(key, now, ttl);
            match tokio::time::timeout(Duration::from_secs(2), revoke).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "could not record the logout"),
                Err(_) => tracing::warn!("recording the logout timed out"),
            }
        }
    }
    if let Some(rt) = session.as_ref().and_then(|s| s.rt.as_deref()) {
        revoke_refresh_token(&shared, rt).await;
    }
    // Read the ID token before clearing anything: it is the provider's logout hint. It must be
    // this session's: the ID token cookie is not a `__Host-` cookie (it lives on the auth path),
    // so a sibling subdomain could toss in its own user's, and the victim's logout would then
    // end the attacker's session at the provider instead of the victim's.
    let id_token = match (
        codec.read_json::<String>(&cookies, &codec.id_token.name),
        &session,
    ) {
        // Kept in the record beside the session: its own.
        (_, Some(SessionData { idt: Some(t), .. })) if stored_id.is_some() => Some(t.clone()),
        (Some(Ok(t)), Some(session)) if hint_belongs_to(&t, &session.ids) => Some(t),
        (Some(Ok(_)), _) => {
            tracing::debug!("ID token cookie does not belong to this session; no logout hint");
            None
        }
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
    // A silent login must not sign the user straight back in (a provider without
    // end_session, or one whose session outlives this logout): mark it as tried.
    if shared
        .silent_login
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        set_cookies.push(crate::silent::tried_cookie(&shared));
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
    if let Some(session) = &session {
        tracing::info!(sub = session.ids.sub.as_deref().unwrap_or(""), "signed out");
        notify_logout(&shared, session).await;
    }
    redirect(&location, set_cookies)
}

/// Tells the app's logout hook, if any, which session ended. Its failure is logged; the logout
/// goes on.
async fn notify_logout(shared: &Shared, session: &SessionData) {
    let Some(hook) = &shared.settings.hooks.logout else {
        return;
    };
    let claims = session.identity().and_then(|map| {
        crate::Claims::from_map_with(
            map,
            shared.verifier.layer(),
            crate::claims::Extras::default(),
        )
    });
    let Some(claims) = claims else {
        return;
    };
    let cx = crate::hooks::LogoutContext { claims };
    if let Err(error) = hook.run(cx, shared.settings.hooks.timeout).await {
        tracing::warn!(%error, "logout hook");
    }
}

/// Best effort: revokes the session's refresh token at the provider (RFC 7009), when its
/// discovery lists a revocation endpoint, waiting at most the configured timeout.
async fn revoke_refresh_token(shared: &Shared, refresh_token: &str) {
    let Some(endpoint) = shared.meta.revocation_endpoint.as_deref() else {
        return;
    };
    let timeout = shared.settings.token_revocation_timeout;
    let revoke = shared.token.revoke_refresh_token(endpoint, refresh_token);
    match tokio::time::timeout(timeout, revoke).await {
        Ok(Ok(())) => tracing::debug!("refresh token revoked at the provider"),
        Ok(Err(error)) => {
            tracing::warn!(error = %Chain(&error), "the provider did not revoke the refresh token")
        }
        Err(_) => tracing::warn!(
            ?timeout,
            "revoking the refresh token at the provider timed out"
        ),
    }
}

/// Whether an ID token (sealed by this layer, so verified at a login) names the same user and
/// provider session as the session cookie.
fn hint_belongs_to(id_token: &str, ids: &crate::revocation::SessionIds) -> bool {
    let Ok(data) = jsonwebtoken::dangerous::insecure_decode::<
        serde_json::Map<String, serde_json::Value>,
    >(id_token) else {
        return false;
    };
    let claim = |k: &str| data.claims.get(k).and_then(serde_json::Value::as_str);
    claim("sub").is_some()
        && claim("sub") == ids.sub.as_deref()
        && claim("sid") == ids.sid.as_deref()
}
