//! [`M2mClients`]: which machine-to-machine clients bearer tokens may come from.

use super::error::ConfigError;

/// Which machine-to-machine clients may call with tokens that name no audience: the argument of
/// [`AuthLayerBuilder::accept_m2m_clients`](crate::AuthLayerBuilder::accept_m2m_clients).
///
/// One setting with two shapes, rather than two builder methods, so "any client" and "these
/// clients" cannot be combined into something in between, and the choice reads as one value
/// (for example loaded from configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum M2mClients {
    /// Any client of the provider's environment (tokens of this issuer only).
    Any,
    /// Only these client ids (Scalekit: `m2morg_...`). Build it with [`M2mClients::only`]; an
    /// empty list, or an empty id, is a [`ConfigError`] at `build()`.
    Only(Vec<String>),
}

impl M2mClients {
    /// Only these client ids.
    ///
    /// ```
    /// let clients = tower_oidc_auth::M2mClients::only(["m2morg_68315758685323697"]);
    /// # let _ = clients;
    /// ```
    pub fn only<I, T>(ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::Only(ids.into_iter().map(Into::into).collect())
    }

    /// Whether tokens of this client are accepted.
    pub(crate) fn accepts(&self, client_id: &str) -> bool {
        match self {
            M2mClients::Any => true,
            M2mClients::Only(ids) => ids.iter().any(|id| id == client_id),
        }
    }

    /// A list with no client, or with an empty id, is a mistake (an unset variable, a stray
    /// comma), not a way to say "none".
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match self {
            M2mClients::Only(ids) if ids.is_empty() => Err(ConfigError::Invalid {
                what: "accept_m2m_clients",
                reason: "the list of client ids is empty; leave the setting out to accept no \
                         M2M client"
                    .into(),
            }),
            M2mClients::Only(ids) if ids.iter().any(|id| id.trim().is_empty()) => {
                Err(ConfigError::Invalid {
                    what: "accept_m2m_clients",
                    reason: "a client id is empty".into(),
                })
            }
            _ => Ok(()),
        }
    }
}
