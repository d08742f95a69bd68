//! The Management API's objects, as Scalekit's OpenAPI specification defines them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A Scalekit user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// `usr_...`.
    #[serde(default)]
    pub id: String,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Your system's id for the user.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Organization memberships, with roles and permissions.
    #[serde(default)]
    pub memberships: Vec<Membership>,
    /// Profile (names, phone, ...).
    #[serde(default)]
    pub user_profile: Option<UserProfile>,
    /// Custom metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user's profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserProfile {
    /// Full name.
    #[serde(default)]
    pub name: Option<String>,
    /// Given name.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub family_name: Option<String>,
    /// Whether the e-mail is verified.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user's membership in an organization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Membership {
    /// `org_...`.
    #[serde(default)]
    pub organization_id: String,
    /// Organization name.
    #[serde(default)]
    pub name: Option<String>,
    /// Organization display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `ACTIVE`, `INACTIVE`, `PENDING_INVITE`, `INVITE_EXPIRED`.
    #[serde(default)]
    pub membership_status: Option<String>,
    /// Roles in the organization.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Effective permissions in the organization.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Membership {
    /// The role names.
    #[must_use]
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.name.as_str()).collect()
    }
}

/// A role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Role {
    /// Role id.
    #[serde(default)]
    pub id: Option<String>,
    /// Machine name, such as `admin`.
    #[serde(default)]
    pub name: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An organization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Organization {
    /// `org_...`.
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Your system's id for the organization.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Custom metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Any other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The former name of [`UserSession`].
#[deprecated(note = "renamed to `UserSession` (a session at Scalekit, not the layer's)")]
pub type Session = UserSession;

/// A user session at Scalekit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserSession {
    /// `ses_...`.
    #[serde(default)]
    pub session_id: String,
    /// `usr_...`.
    #[serde(default)]
    pub user_id: String,
    /// `active`, `expired`, `revoked` or `logout`.
    #[serde(default)]
    pub status: Option<String>,
    /// The organization currently active in the session.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// Any other field (device, timestamps, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Roles and metadata to give a user in an organization, for creating or updating a membership.
///
/// [`ManagementClient::create_membership`](super::ManagementClient::create_membership) sends it as the specification's
/// `v1usersCreateMembership` (`roles`, `metadata`, `inviter_email`);
/// [`ManagementClient::update_membership`](super::ManagementClient::update_membership) as `v1usersUpdateMembership` (`roles` and
/// `metadata` only).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct MembershipRequest {
    /// Role names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleRef>,
    /// Custom metadata: strings only (the specification's `metadata` is a map of strings;
    /// keys of 3 to 25 characters, values of 1 to 256).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Who invited the user. Sent when creating a membership only: the update has no such
    /// field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inviter_email: Option<String>,
}

/// The body of `UserService_UpdateMembership` (`v1usersUpdateMembership`).
#[derive(Serialize)]
pub(super) struct UpdateMembershipBody<'a> {
    #[serde(skip_serializing_if = "<[RoleRef]>::is_empty")]
    pub(super) roles: &'a [RoleRef],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) metadata: &'a BTreeMap<String, String>,
}

impl MembershipRequest {
    /// A request giving these roles.
    #[must_use]
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Self {
            roles: roles
                .into_iter()
                .map(|name| RoleRef { name: name.into() })
                .collect(),
            ..Self::default()
        }
    }
}

/// A role by name.
#[derive(Debug, Clone, Serialize)]
pub struct RoleRef {
    /// Role name.
    pub name: String,
}
