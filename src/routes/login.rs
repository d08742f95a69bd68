//! `GET /auth/login`: start the Authorization Code flow with state, nonce and PKCE S256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;
use http::StatusCode;
use sha2::{Digest, Sha256};

use super::{param, query_params, random_token, read_index, Transaction, TX_ID_LEN};
use crate::config::PASS_THROUGH;
use crate::layer::Shared;
use crate::responses::{error_page, redirect, Page};
use crate::return_to;
use crate::same_origin::is_same_origin;

pub(crate) fn login(shared: &Shared, parts: &Parts) -> Page {
    let settings = &shared.settings;
    let codec = &shared.cookies;
    let params = match query_params(parts.uri.query()) {
        Ok(p) => p,
        Err(reason) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Bad login request",
                reason,
                Some(&settings.login_path),
                Vec::new(),
            )
        }
    };
    let return_to = param(&params, "return_to")
        .and_then(return_to::sanitize)
        .unwrap_or(&settings.default_return)
        .to_owned();

    let state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let now = shared.clock.now();

    let mut authorize = match url::Url::parse(&shared.meta.authorization_endpoint) {
        Ok(u) => u,
        Err(_) => {
            return error_page(
                StatusCode::BAD_GATEWAY,
                "Sign-in unavailable",
                "The identity provider's login address is not usable.",
                None,
                Vec::new(),
            )
        }
    };
    {
        let mut q = authorize.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", &settings.redirect_url)
            .append_pair("scope", &settings.scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in &settings.authorize_params {
            q.append_pair(k, v);
        }
        // Pass-through parameters choose the tenant or connection: a cross-site link must not
        // choose for the user (login CSRF into an attacker's organization). Only requests from
        // the app itself carry them, and only those the app approves.
        let same_origin = is_same_origin(&parts.headers, &settings.origin);
        for name in PASS_THROUGH {
            let Some(v) = param(&params, name) else {
                continue;
            };
            if v.is_empty() || v.len() > 512 || v.chars().any(char::is_control) {
                continue;
            }
            if !same_origin {
                tracing::debug!(
                    param = name,
                    "cross-site login: pass-through parameter dropped"
                );
                continue;
            }
            if let Some(approve) = &settings.approve_param {
                if !(approve.0)(name, v) {
                    tracing::debug!(param = name, "pass-through parameter not approved; dropped");
                    continue;
                }
            }
            q.append_pair(name, v);
        }
    }

    // One cookie per attempt, so logins started in several tabs all complete; the index lets
    // us drop the oldest when too many pile up.
    let cookies = codec.read(&parts.headers);
    let mut index = read_index(shared, &cookies);
    let id = state[..TX_ID_LEN].to_owned();
    let mut set_cookies = Vec::new();
    index.0.push((id.clone(), now));
    while index.0.len() > settings.max_login_attempts {
        let (old, _) = index.0.remove(0);
        set_cookies.push(codec.clear(&format!("{}{old}", codec.tx_prefix), &codec.tx_path));
    }
    let tx = Transaction {
        state,
        nonce,
        verifier,
        return_to,
        created: now,
    };
    let tx_slot = crate::cookies::Slot {
        name: format!("{}{id}", codec.tx_prefix),
        path: codec.tx_path.clone(),
    };
    codec.write_json(&tx_slot, &tx, settings.login_timeout, 1, &mut set_cookies);
    codec.write_json(
        &codec.tx_index,
        &index,
        settings.login_timeout,
        cookies.chunk_count(&codec.tx_index.name),
        &mut set_cookies,
    );
    redirect(authorize.as_str(), set_cookies)
}
