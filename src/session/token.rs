//! Where a request's access token is found for [`AccessToken`]: in the claims (a session
//! refreshed by this request), the session cookie, or the `Authorization` header.

use http::HeaderMap;

use super::SessionData;
use crate::access_token::{AccessToken, AccessTokenExt};
use crate::claims::{Claims, TokenSource};

/// The access token of a request the layer attached `claims` to, from the request's headers.
pub(crate) fn token_of(claims: &Claims, headers: &HeaderMap) -> Option<AccessToken> {
    match claims.token_source() {
        TokenSource::None => None,
        TokenSource::Inline(token) => Some(token.clone()),
        TokenSource::Bearer => {
            crate::bearer::bearer_token(headers).map(|t| AccessToken::new(t, claims.exp))
        }
        TokenSource::Session(codec) => {
            // The cookie the layer read for these claims: open it again (only for handlers that
            // ask; the verified session is remembered without its token).
            let cookies = codec.read(headers);
            let data = codec
                .read_json::<SessionData>(&cookies, &codec.session.name)?
                .ok()?;
            // The same cookie, so the same user: checked all the same.
            let sub = match &data.ids.sub {
                Some(sub) => Some(sub.clone()),
                None => data
                    .identity()
                    .and_then(|c| c.get("sub")?.as_str().map(str::to_owned)),
            };
            (sub.as_deref() == Some(claims.sub.as_str())).then(|| data.access_token(data.exp))
        }
    }
}

impl<B> AccessTokenExt for http::Request<B> {
    fn access_token(&self) -> Option<AccessToken> {
        token_of(self.extensions().get::<Claims>()?, self.headers())
    }
}

impl AccessTokenExt for http::request::Parts {
    fn access_token(&self) -> Option<AccessToken> {
        token_of(self.extensions.get::<Claims>()?, &self.headers)
    }
}

#[cfg(feature = "tonic")]
impl<T> AccessTokenExt for tonic::Request<T> {
    fn access_token(&self) -> Option<AccessToken> {
        token_of(self.extensions().get::<Claims>()?, self.metadata().as_ref())
    }
}
