//! Paths, list endpoints and answers of the Management API: no I/O.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ManagementError;

/// A Management API path: literal parts written in this file and ids that passed [`checked_id`].
/// The only way a path reaches [`ManagementClient::call`](super::ManagementClient::call), so no id goes into a URL unchecked.
#[derive(Debug, Clone)]
pub(super) struct ApiPath(String);

impl ApiPath {
    /// A path starting with a literal, such as `/users`.
    pub(super) fn new(literal: &'static str) -> Self {
        Self(literal.to_owned())
    }

    /// The path, for the request URL.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends `/<id>`, if `id` is a valid path segment (`name` is for the error).
    pub(super) fn id(mut self, name: &'static str, id: &str) -> Result<Self, ManagementError> {
        self.0.push('/');
        self.0.push_str(checked_id(name, id)?);
        Ok(self)
    }

    /// Appends a literal, such as `/sessions/revoke`.
    pub(super) fn then(mut self, literal: &'static str) -> Self {
        self.0.push_str(literal);
        self
    }
}

/// `id` if it is one URL path segment made of `A-Z a-z 0-9 _ -`: never empty, never `.` or `..`
/// (which a URL parser resolves, climbing to another endpoint), never a separator, a
/// percent-escape, a query or a fragment. Every Scalekit id (`usr_...`, `org_...`, `ses_...`)
/// is of this form.
pub(super) fn checked_id<'a>(name: &'static str, id: &'a str) -> Result<&'a str, ManagementError> {
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(id)
    } else {
        Err(ManagementError::InvalidId {
            name,
            id: id.to_owned(),
        })
    }
}

/// A list endpoint: its operation in the specification, the field holding its items, and the
/// `page_size` bounds the specification states for it (in the parameter's description).
pub(super) struct ListEndpoint {
    pub(super) operation: &'static str,
    pub(super) field: &'static str,
    min_page_size: u32,
    max_page_size: Option<u32>,
}

impl ListEndpoint {
    pub(super) fn check(&self, page_size: u32) -> Result<(), ManagementError> {
        let in_range = page_size >= self.min_page_size
            && self.max_page_size.is_none_or(|max| page_size <= max);
        if in_range {
            Ok(())
        } else {
            Err(ManagementError::InvalidPageSize {
                operation: self.operation,
                page_size,
                min: self.min_page_size,
                max: self.max_page_size,
            })
        }
    }
}

/// `GET /users`: "Must be between 10 and 100".
pub(super) const LIST_USERS: ListEndpoint = ListEndpoint {
    operation: "UserService_ListUsers",
    field: "users",
    min_page_size: 10,
    max_page_size: Some(100),
};

/// `GET /organizations`: "Must be between 10 and 100".
pub(super) const LIST_ORGANIZATIONS: ListEndpoint = ListEndpoint {
    operation: "OrganizationService_ListOrganization",
    field: "organizations",
    min_page_size: 10,
    max_page_size: Some(100),
};

/// `GET /organizations/{organization_id}/users`: "Valid range: 1-100".
pub(super) const LIST_ORGANIZATION_USERS: ListEndpoint = ListEndpoint {
    operation: "UserService_ListOrganizationUsers",
    field: "users",
    min_page_size: 1,
    max_page_size: Some(100),
};

/// `GET /users/{user_id}/sessions`: no bound stated ("defaults to a server-defined limit"). 0 is
/// refused: it would silently mean that default.
pub(super) const LIST_USER_SESSIONS: ListEndpoint = ListEndpoint {
    operation: "SessionService_GetUserSessions",
    field: "sessions",
    min_page_size: 1,
    max_page_size: None,
};

#[derive(Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

/// `sub` if it is a Scalekit user id: `usr_` and more, a valid path segment. The specification
/// says user ids "must start with 'usr_'" (`UserService_CreateMembership`'s `id` parameter).
pub(super) fn scalekit_user_id(sub: &str) -> Result<&str, ManagementError> {
    match checked_id("user_id", sub) {
        Ok(id) if id.strip_prefix("usr_").is_some_and(|rest| !rest.is_empty()) => Ok(id),
        _ => Err(ManagementError::NotAScalekitUser {
            sub: sub.to_owned(),
        }),
    }
}

pub(crate) fn field<T: DeserializeOwned>(mut v: Value, name: &str) -> Result<T, ManagementError> {
    let inner = v.get_mut(name).map(Value::take).unwrap_or(Value::Null);
    serde_json::from_value(inner).map_err(|e| ManagementError::Malformed(format!("{name}: {e}")))
}

/// 401, or a body saying UNAUTHENTICATED (gRPC code 16) under another status.
pub(crate) fn is_unauthenticated(status: http::StatusCode, body: &[u8]) -> bool {
    status == http::StatusCode::UNAUTHORIZED
        || (!status.is_success()
            && serde_json::from_slice::<ErrorBody>(body).is_ok_and(|e| e.code == Some(16)))
}

/// A final API answer (no retry left): the JSON on success, a typed error otherwise. No I/O (the
/// fuzz targets call it too).
pub(crate) fn api_answer<T: DeserializeOwned>(
    status: http::StatusCode,
    bytes: &[u8],
) -> Result<T, ManagementError> {
    if !status.is_success() {
        return Err(api_error(status, bytes));
    }
    if bytes.is_empty() || bytes == b"null" {
        return serde_json::from_value(Value::Null)
            .or_else(|_| serde_json::from_value(Value::Object(Map::new())))
            .map_err(|e| ManagementError::Malformed(e.to_string()));
    }
    serde_json::from_slice(bytes).map_err(|e| ManagementError::Malformed(e.to_string()))
}

/// One page of a list endpoint: its items under `field`, and the next page's token.
pub(crate) fn page_items<T: DeserializeOwned>(
    page: &Value,
    field: &str,
) -> Result<(Vec<T>, Option<String>), ManagementError> {
    let items = page.get(field).cloned().unwrap_or(Value::Array(Vec::new()));
    let items = serde_json::from_value::<Vec<T>>(items)
        .map_err(|e| ManagementError::Malformed(e.to_string()))?;
    let next = page
        .get("next_page_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok((items, next))
}

pub(super) fn api_error(status: http::StatusCode, body: &[u8]) -> ManagementError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let (code, message, error_code) = match parsed {
        Some(e) => {
            let error_code = e
                .details
                .iter()
                .find_map(|d| d.get("error_code").and_then(Value::as_str))
                .map(str::to_owned);
            (e.code, e.message, error_code)
        }
        None => (None, None, None),
    };
    ManagementError::Api {
        status: status.as_u16(),
        code,
        message: message.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        error_code,
    }
}
