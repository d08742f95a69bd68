//! Scalekit as it really is (issue 13). Every payload, token and response here is shaped after a
//! primary source, named in a comment beside the fixture: Scalekit's OpenAPI specification
//! (`../shared/reference/scalekit-openapi.yaml`, copied from `scalekit-inc/developer-docs`), its
//! documentation pages and its official SDKs.

mod idp_login;
mod m2m;
mod webhook;
