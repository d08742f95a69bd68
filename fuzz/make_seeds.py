#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Run from the repository root: `python3 fuzz/make_seeds.py [path/to/scalekit-openapi.yaml]`.
Needs PyYAML and `cryptography`. Input layouts: see the `target_*` functions in
src/__private.rs. Scalekit webhook bodies and Management API responses come from Scalekit's
OpenAPI spec (scalekit-inc/developer-docs, openapi/scalekit.yaml at 96ada4a7; the repository
keeps a copy at /work/shared/reference/scalekit-openapi.yaml): webhook bodies are the spec's
`webhooks:` examples verbatim, API responses are built from the spec's schemas and their
per-field examples.
"""
import base64
import hashlib
import hmac
import json
import os
import sys

import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

SPEC = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/reference/scalekit-openapi.yaml"
OUT = "fuzz/corpus"
NOW = 1_700_000_000  # FUZZ_NOW in src/__private.rs
ISSUER = "https://issuer.example"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# FUZZ_SIGNING_KEY in src/__private.rs: made for the fuzz targets, protects nothing.
SIGNING_KEY = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAqkVOgLkAka6skse8YsURFROYdaBfAJkculydqAZHEmhRANCAAQ+elw7X1N7Bkx7Y7TGtADYuwL0slQs3ZtHAw0Gcl9z2Oa+nUePqoiPLUkCNUbR/JvcRvmvEoA1ln9JVvZM7Gta"
# Status bytes of provider_json (mode 2) and management_json: FUZZ_STATUSES[byte % 11].
STATUS = {200: b"B", 201: b"C", 204: b"D", 400: b"E", 401: b"F", 403: b"G", 404: b"H",
          409: b"I", 429: b"J", 500: b"K", 503: b"L"}


def j(value):
    return json.dumps(value, separators=(",", ":")).encode()


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write(target, name, data):
    os.makedirs(f"{OUT}/{target}", exist_ok=True)
    with open(f"{OUT}/{target}/{name}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def unsigned_jwt(header, claims, signature=b"\x01" * 64):
    return f"{b64u(j(header))}.{b64u(j(claims))}.{b64u(signature)}"


def es256_jwt(header, claims):
    key = serialization.load_der_private_key(base64.b64decode(SIGNING_KEY), None)
    signing_input = f"{b64u(j(header))}.{b64u(j(claims))}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{signing_input.decode()}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def webhook_signature(msg_id, ts, body):
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Loader(yaml.SafeLoader):
    pass


# Keep date-times as the strings they are on the wire.
Loader.yaml_implicit_resolvers = {
    k: [(tag, r) for tag, r in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
spec = yaml.load(open(SPEC), Loader=Loader)
schemas = spec["components"]["schemas"]


def instance(schema, seen=()):
    """A JSON value for `schema` built from the spec's own examples (recursive refs cut)."""
    if "examples" in schema:
        return schema["examples"][0]
    if "example" in schema:
        return schema["example"]
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return None if name in seen else instance(schemas[name], seen + (name,))
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: instance(v, seen) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [instance(schema.get("items", {}), seen)]
    return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(kind)


def webhook_example(event):
    return spec["webhooks"][event]["post"]["requestBody"]["content"]["application/json"]["example"]


# ---- cookies (a Cookie header; the same bytes are also sealed as a session plaintext) ----
session = {"at": "a.b.c", "rt": "r", "exp": NOW + 300, "ts": NOW, "idc": {"sub": "u"},
           "sid": "s", "sub": "u", "lid": "l", "login": NOW}
write("cookies", "session-json", j(session))
write("cookies", "session-json-opaque", j({**session, "opaque": True, "rt": None}))
write("cookies", "session-garbage", "oidc_fuzz_s=Z2FyYmFnZQ; other=1")
write("cookies", "session-chunks", "oidc_fuzz_s=aaa; oidc_fuzz_s.1=bbb; oidc_fuzz_s.2=ccc; x=y")
write("cookies", "all-kinds", "oidc_fuzz_id=x; oidc_fuzz_txi=y; oidc_fuzz_tx_abcdef0123456789=z")
write("cookies", "quoted-and-empty", 'oidc_fuzz_s="abc"; oidc_fuzz_id=; ;=;oidc_fuzz_s=dup')

# ---- callback_query ----
write("callback_query", "code", f"code=abc&state=0123456789abcdef0123&iss={ISSUER.replace(':', '%3A').replace('/', '%2F')}")
write("callback_query", "error", "error=access_denied&error_description=User%20cancelled&state=s")
write("callback_query", "return-to", "return_to=%2Fdashboard%3Ftab%3D1")
write("callback_query", "repeated", "code=a&code=b&state=s")
write("callback_query", "bad-escapes", "code=%zz&state=%&iss=%E2%82")
write("callback_query", "plus-and-empty", "code=a+b&&=&state")

# ---- jwt (a token; the same bytes are also read as access-token claims JSON) ----
claims = {"iss": ISSUER, "aud": "client", "sub": "u", "exp": 4102444800, "iat": NOW,
          "scope": "openid profile", "roles": ["admin"]}
write("jwt", "claims-json", j(claims))
write("jwt", "claims-json-client-id", j({**{k: v for k, v in claims.items() if k != "aud"}, "client_id": "client"}))
write("jwt", "rs256-k1", unsigned_jwt({"alg": "RS256", "kid": "k1", "typ": "JWT"}, claims, b"\x02" * 256))
write("jwt", "es256-k2-at-jwt", unsigned_jwt({"alg": "ES256", "kid": "k2", "typ": "at+jwt"}, claims))
write("jwt", "es256-no-kid", unsigned_jwt({"alg": "ES256"}, claims))
write("jwt", "unknown-kid", unsigned_jwt({"alg": "RS256", "kid": "rotated"}, claims))
write("jwt", "alg-none", unsigned_jwt({"alg": "none"}, claims, b""))
write("jwt", "hs256", unsigned_jwt({"alg": "HS256", "kid": "k1"}, claims, b"\x03" * 32))

# ---- return_to ----
for name, target in [("path", "/dashboard?tab=1#x"), ("root", "/"),
                     ("scheme-relative", "//evil.example/"), ("backslash", "/\\evil.example"),
                     ("absolute", "https://evil.example/"), ("encoded-slashes", "/%2F%2Fevil"),
                     ("dot-segments", "/a/../..//evil"), ("tab", "/\t/evil.example")]:
    write("return_to", name, target)

# ---- backchannel (mode byte, see target_backchannel) ----
event = {"http://schemas.openid.net/event/backchannel-logout": {}}
logout = {"iss": ISSUER, "aud": "client", "iat": NOW, "jti": "jti-1", "sid": "sid-1", "events": event}
header = {"alg": "ES256", "kid": "fuzz-es256", "typ": "logout+jwt"}
signed = es256_jwt(header, logout)
write("backchannel", "form-signed-sid", "1logout_token=" + signed)
write("backchannel", "form-signed-sub", "1logout_token=" + es256_jwt(
    header, {**{k: v for k, v in logout.items() if k != "sid"}, "sub": "u", "jti": "jti-2"}))
write("backchannel", "form-bad-signature", "1logout_token=" + unsigned_jwt(header, logout))
write("backchannel", "form-unknown-kid", "1logout_token=" + unsigned_jwt({**header, "kid": "new"}, logout))
write("backchannel", "form-repeated", "1logout_token=a.b.c&logout_token=a.b.c")
write("backchannel", "form-missing", "1state=x&logout_token_=y")
write("backchannel", "type-charset", "01logout_token=" + signed)
write("backchannel", "type-json", "02" + json.dumps({"logout_token": signed}))
write("backchannel", "no-content-type", "06logout_token=x")
write("backchannel", "no-body", "07")
write("backchannel", "claims-valid", b"2" + j(logout))
write("backchannel", "claims-nonce", b"2" + j({**logout, "nonce": "n"}))
write("backchannel", "claims-no-events", b"2" + j({k: v for k, v in logout.items() if k != "events"}))
write("backchannel", "claims-old", b"2" + j({**logout, "iat": NOW - 10_000, "exp": NOW - 1}))
write("backchannel", "sign-sid", b"3" + j({**logout, "jti": "jti-3"}))
write("backchannel", "sign-sub-aud-list", b"3" + j({**{k: v for k, v in logout.items() if k != "sid"},
                                                    "sub": "u", "aud": ["x", "client"], "jti": "jti-4"}))
write("backchannel", "sign-no-jti", b"3" + j({k: v for k, v in logout.items() if k != "jti"}))

# ---- webhook: even first byte = raw headers, odd = signed (see target_webhook) ----
spec_bodies = {e: j(webhook_example(e)) for e in
               ["user.logout", "user.login", "organization.created", "role.created",
                "user.organization_membership_deleted"]}
for event, body in spec_bodies.items():
    write("webhook", f"signed-scalekit-{event}", b"1msg_1\n" + str(NOW).encode() + b"\n" + body)
# Not a Scalekit payload: the flat shape the event parser reads (data.user_id / data.session_id).
flat = j({"type": "user.logout", "data": {"user_id": "usr_1", "session_id": "ses_1"}})
write("webhook", "signed-synthetic-flat-logout", b"1msg_2\n" + str(NOW).encode() + b"\n" + flat)
write("webhook", "signed-not-json", b"1msg_3\nnow\n{\"type\":")
body = spec_bodies["user.logout"]
good = webhook_signature("msg_1", NOW, body)
write("webhook", "headers-scalekit-user.logout", f"0msg_1\n{NOW}\n{good}\n".encode() + body)
write("webhook", "headers-flat-logout", f"0msg_2\n{NOW}\n{webhook_signature('msg_2', NOW, flat)}\n".encode() + flat)
write("webhook", "headers-rotated-keys", f"0msg_1\n{NOW}\nv1,aW52YWxpZA== v2,xyz {good}\n".encode() + body)
write("webhook", "headers-bad-signature", f"0msg_1\n{NOW}\nv1,aW52YWxpZA==\n".encode() + body)
write("webhook", "headers-stale", f"0msg_1\n{NOW - 301}\n{webhook_signature('msg_1', NOW - 301, body)}\n".encode() + body)
write("webhook", "headers-missing-signature", f"0msg_1\n{NOW}".encode())
# The timestamp that overflowed `now - ts` (fixed; kept as a regression seed).
write("webhook", "headers-timestamp-i64-min", f"0msg_1\n-9223372036854775808\n{good}\n".encode() + body)

# ---- provider_json: 0 discovery, 1 JWKS, 2 token answer (status byte), 3 Cache-Control ----
discovery = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/oauth/authorize",
    "token_endpoint": f"{ISSUER}/oauth/token",
    "jwks_uri": f"{ISSUER}/keys",
    "end_session_endpoint": f"{ISSUER}/oidc/logout",
    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    "authorization_response_iss_parameter_supported": True,
    "code_challenge_methods_supported": ["S256"],
    "response_types_supported": ["code"],
}
write("provider_json", "discovery", b"0" + j(discovery))
write("provider_json", "discovery-issuer-only", b"0" + j({"issuer": ISSUER + "/"}))
write("provider_json", "discovery-plain-pkce-basic", b"0" + j({**discovery, "code_challenge_methods_supported": ["plain"],
                                                               "token_endpoint_auth_methods_supported": ["client_secret_basic"]}))
write("provider_json", "discovery-http-endpoints", b"0" + j({**discovery, "token_endpoint": "http://issuer.example/t",
                                                             "end_session_endpoint": "http://127.0.0.1:8080/logout"}))
write("provider_json", "discovery-wrong-types", b"0" + j({**discovery, "end_session_endpoint": 5}))
rsa_n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"
rsa = {"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": rsa_n, "e": "AQAB"}
p256 = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uE3MvvkE",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
# RFC 8037 appendix A.2 public key.
okp = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
write("provider_json", "jwks", b"1" + j({"keys": [rsa, {**p256, "kid": "k2"}, {**okp, "kid": "k3"}]}))
write("provider_json", "jwks-no-kids", b"1" + j({"keys": [p256, okp]}))
write("provider_json", "jwks-refused", b"1" + j({"keys": [{**rsa, "use": "enc"}, {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
                                                         {**rsa, "alg": "RSA-OAEP"}, {**p256, "crv": "P-521"}]}))
write("provider_json", "jwks-duplicate-kid", b"1" + j({"keys": [rsa, {**rsa, "alg": "PS256"}]}))
write("provider_json", "jwks-malformed", b"1" + j({"keys": [{"kty": "RSA", "n": "!", "e": 3}, 7, None]}))
token = {"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt", "id_token": "a.b.c"}
write("provider_json", "token", b"2" + STATUS[200] + j(token))
write("provider_json", "token-string-expiry", b"2" + STATUS[200] + j({"access_token": "at", "expires_in": "3600"}))
write("provider_json", "token-huge-expiry", b"2" + STATUS[200] + j({"access_token": "at", "expires_in": 9223372036854775807}))
write("provider_json", "token-mac", b"2" + STATUS[200] + j({**token, "token_type": "mac"}))
write("provider_json", "token-empty", b"2" + STATUS[200] + j({"access_token": ""}))
write("provider_json", "error-invalid-grant", b"2" + STATUS[400] + j({"error": "invalid_grant", "error_description": "expired"}))
write("provider_json", "error-unavailable", b"2" + STATUS[503] + j({"error": "temporarily_unavailable"}))
write("provider_json", "error-html", b"2" + STATUS[500] + b"<html>oops</html>")
for name, value in [("public-max-age", "public, max-age=3600"), ("no-store", "no-store"),
                    ("quoted", 'max-age="60"'), ("bad", "max-age=abc, no-cache=\"x\""),
                    ("huge", "max-age=99999999999999999999")]:
    write("provider_json", f"cache-control-{name}", "3" + value)

# ---- management_json: status byte, then the body ----
def response(path, method="get", code="200"):
    content = spec["paths"][path][method]["responses"][code]["content"]["application/json"]
    return instance(content["schema"])


for name, path, method, code in [
    ("get-user", "/api/v1/users/{id}", "get", "200"),
    ("list-users", "/api/v1/users", "get", "200"),
    ("get-organization", "/api/v1/organizations/{id}", "get", "200"),
    ("list-organizations", "/api/v1/organizations", "get", "200"),
    ("get-session", "/api/v1/sessions/{session_id}", "get", "200"),
    ("list-user-sessions", "/api/v1/users/{user_id}/sessions", "get", "200"),
    ("revoke-user-sessions", "/api/v1/users/{user_id}/sessions/revoke", "post", "200"),
    ("list-roles", "/api/v1/roles", "get", "200"),
    ("list-organization-roles", "/api/v1/organizations/{org_id}/roles", "get", "200"),
    ("create-membership", "/api/v1/memberships/organizations/{organization_id}/users/{id}", "post", "201"),
]:
    write("management_json", name, STATUS[int(code)] + j(response(path, method, code)))
# The error envelope the client reads ({code, message, details}); the detail is the spec's
# errdetailsErrorInfo.
detail = {**instance(schemas["errdetailsErrorInfo"]), "error_code": "USER_NOT_FOUND"}
write("management_json", "error-not-found", STATUS[404] + j({"code": 5, "message": "user not found", "details": [detail]}))
write("management_json", "error-unauthenticated", STATUS[403] + j({"code": 16, "message": "token expired"}))
write("management_json", "error-not-json", STATUS[503] + b"upstream connect error")
write("management_json", "empty-ok", STATUS[204])
write("management_json", "token", STATUS[200] + j({"access_token": "eyJ.x.y", "token_type": "Bearer", "expires_in": 86399}))
write("management_json", "token-huge-expiry", STATUS[200] + j({"access_token": "t", "expires_in": 18446744073709551615}))
write("management_json", "token-error", STATUS[401] + j({"error": "invalid_client"}))
