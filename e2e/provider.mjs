// An independent OpenID provider for the end-to-end suite: oidc-provider 9, laid out like
// Scalekit (authorization at /oauth/authorize, token at /oauth/token, JWKS at /keys, end
// session at /oidc/logout).
//
// Configuration (environment):
//   PROVIDER_URL      issuer and listen address (default http://127.0.0.1:4400)
//   ACCESS_TOKEN_TTL  access-token lifetime in seconds (default 15)
//   E2E_CLIENTS       JSON array: [{ client_id, client_secret, app_url }]; each client gets
//                     redirect_uri <app_url>/auth/callback, post-logout <app_url>/ and
//                     back-channel logout <app_url>/auth/backchannel-logout. A client with
//                     `key_file` (a PEM private key) instead authenticates with
//                     private_key_jwt (RFC 7523; oidc-provider's `jwks` client metadata): its
//                     public key is registered, and no secret.
//
// Test hooks (under /__e2e/, loopback only, for the scenario runner):
//   GET  /__e2e/health       200 once listening
//   GET  /__e2e/stats        counters: refresh grants (also by client), back-channel deliveries,
//                            JWKS fetches...
//   POST /__e2e/rotate-keys  new RS256 signing key; the old one stays published for verification
//
// Key rotation builds a new Provider instance with the new key first in its JWKS. All
// instances share one storage adapter and the same cookie keys, so sessions, grants and
// refresh tokens survive the swap.

import { createServer } from 'node:http';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const ISSUER = (process.env.PROVIDER_URL || 'http://127.0.0.1:4400').replace(/\/+$/, '');
const ACCESS_TOKEN_TTL = Number(process.env.ACCESS_TOKEN_TTL || 15);
const CLIENTS = JSON.parse(process.env.E2E_CLIENTS || '[]');
const RESOURCE = 'urn:tower-oidc-auth:e2e:api';
const COOKIE_KEYS = [randomBytes(32).toString('base64url')];

const log = (...args) => console.log(new Date().toISOString(), ...args);

// ---------------------------------------------------------------------------------------------
// Storage shared by every Provider instance (they are swapped on key rotation).

const store = new Map(); // key -> { payload, expiresAt }
const now = () => Math.floor(Date.now() / 1000);

function live(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt && entry.expiresAt <= now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

class SharedAdapter {
  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? now() + expiresIn : undefined;
    store.set(this.key(id), { payload: structuredClone(payload), expiresAt });
    if (payload.grantId) {
      const gkey = `grant:${payload.grantId}`;
      const members = live(gkey) || [];
      members.push(this.key(id));
      store.set(gkey, { payload: members, expiresAt });
    }
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
    if (payload.uid) store.set(`sessionUid:${payload.uid}`, { payload: id, expiresAt });
  }

  async find(id) {
    const payload = live(this.key(id));
    return payload ? structuredClone(payload) : undefined;
  }

  async findByUserCode(userCode) {
    const id = live(`userCode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async findByUid(uid) {
    const id = live(`sessionUid:${uid}`);
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = now();
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const gkey = `grant:${grantId}`;
    for (const member of live(gkey) || []) store.delete(member);
    store.delete(gkey);
  }
}

// ---------------------------------------------------------------------------------------------
// Signing keys.

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = createHash('sha256').update(jwk.n).digest('base64url').slice(0, 16);
  return { ...jwk, kid, use: 'sig', alg: 'RS256' };
}

let signingKeys = [newSigningKey()];

// ---------------------------------------------------------------------------------------------
// Accounts: any login (an e-mail address) with any non-empty password.

function subjectFor(email) {
  return `user-${createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 12)}`;
}

const accounts = new Map(); // sub -> email

async function findAccount(_ctx, sub) {
  const email = accounts.get(sub);
  if (!email) return undefined;
  return {
    accountId: sub,
    async claims() {
      return { sub, email, email_verified: true, name: email.split('@')[0] };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Counters for the scenario runner.

const stats = {
  authorizationCodeGrants: 0,
  refreshGrants: 0,
  refreshGrantsByClient: {}, // client_id -> successful refresh grants
  refreshGrantErrors: 0,
  grantErrors: [],
  backchannel: [], // { client_id, sid, ok, error }
  endSessions: 0,
  jwksRequests: 0,
  rotations: 0,
  pushedRequests: {}, // client_id -> pushed authorization requests accepted (RFC 9126)
  grantsByClient: {}, // client_id -> successful grants of any type
  serverErrors: [],
};

// ---------------------------------------------------------------------------------------------
// Provider configuration.

const OIDC_SCOPES = 'openid profile email offline_access';

function configuration() {
  return {
    adapter: SharedAdapter,
    findAccount,
    jwks: { keys: signingKeys },
    cookies: {
      keys: COOKIE_KEYS,
      // Browsers ignore ports for cookies: the apps on 127.0.0.1 share this jar, so the
      // provider's cookies carry a prefix that tells them apart.
      names: {
        session: 'op_session',
        interaction: 'op_interaction',
        resume: 'op_interaction_resume',
      },
    },
    routes: {
      authorization: '/oauth/authorize',
      token: '/oauth/token',
      jwks: '/keys',
      end_session: '/oidc/logout',
      userinfo: '/userinfo',
      revocation: '/oauth/revoke',
      introspection: '/oauth/introspect',
    },
    clients: CLIENTS.map((c) => ({
      client_id: c.client_id,
      redirect_uris: [`${c.app_url}/auth/callback`],
      post_logout_redirect_uris: [`${c.app_url}/`],
      backchannel_logout_uri: `${c.app_url}/auth/backchannel-logout`,
      backchannel_logout_session_required: true,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...(c.key_file
        ? {
          // OIDC Core 9 / RFC 7523: the client proves itself with a JWT signed by this key.
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [{ ...createPublicKey(readFileSync(c.key_file)).export({ format: 'jwk' }), use: 'sig' }] },
        }
        : { client_secret: c.client_secret, token_endpoint_auth_method: 'client_secret_post' }),
      // RFC 9126 section 6: this client's authorization requests must be pushed.
      ...(c.require_par ? { require_pushed_authorization_requests: true } : {}),
    })),
    clientAuthMethods: ['client_secret_post', 'client_secret_basic', 'private_key_jwt'],
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // The ID token carries the granted user claims (the app reads e-mail from it).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Session: 24 * 3600,
      Interaction: 600,
    },
    rotateRefreshToken: true,
    // The app asks for offline_access without prompt=consent, so the spec rule drops the
    // scope; issue refresh tokens to every client allowed the refresh_token grant anyway.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // First-party clients: consent is automatic. A client without a grant gets one with all
    // OIDC scopes and the API resource, so single sign-on needs no page at all.
    loadExistingGrant: async (ctx) => {
      const { provider, client, session } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
      if (grantId) {
        const existing = await provider.Grant.find(grantId);
        if (existing) return existing;
      }
      const grant = new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope(OIDC_SCOPES);
      grant.addResourceScope(RESOURCE, OIDC_SCOPES);
      await grant.save();
      return grant;
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      // RFC 9126, on by default in 9.x (lib/helpers/defaults.js); discovery lists its endpoint
      // (`/request`), so apps on Par::Auto push their requests.
      pushedAuthorizationRequests: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: false },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        // Like Scalekit: no confirmation page, the end-session request signs out at once.
        logoutSource: async (ctx, form) => {
          ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signing out</title></head>
<body><p>Signing out&hellip;</p>${form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>')}
<script>document.getElementById('op.logoutForm').submit()</script></body></html>`;
        },
      },
      // JWT access tokens (RS256) whose audience is the client: oidc-provider 9 issues JWT
      // access tokens only for a resource server, so every request gets a default resource.
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf || RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource, client) => {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: OIDC_SCOPES,
            audience: client.clientId,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // 9.x refuses outgoing requests to loopback and private addresses (SSRF protection, via
    // an undici dispatcher). The apps under test live on 127.0.0.1: use plain fetch.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    renderError: async (ctx, out, error) => {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><title>Provider error</title></head><body>
<h1 id="op-error">${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description || '')}</p></body></html>`;
      if (error) log('renderError', out, error.message);
    },
  };
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function build() {
  const provider = new Provider(ISSUER, configuration());
  provider.on('grant.success', (ctx) => {
    const gty = ctx.oidc.params.grant_type;
    if (gty === 'refresh_token') {
      stats.refreshGrants += 1;
      const clientId = ctx.oidc.client?.clientId;
      stats.refreshGrantsByClient[clientId] = (stats.refreshGrantsByClient[clientId] || 0) + 1;
    }
    if (gty === 'authorization_code') stats.authorizationCodeGrants += 1;
    const grantClient = ctx.oidc.client?.clientId;
    stats.grantsByClient[grantClient] = (stats.grantsByClient[grantClient] || 0) + 1;
    log('grant.success', gty, ctx.oidc.client?.clientId);
  });
  provider.on('grant.error', (ctx, err) => {
    const gty = ctx.oidc.params?.grant_type;
    if (gty === 'refresh_token') stats.refreshGrantErrors += 1;
    stats.grantErrors.push({ grant_type: gty, error: err.message, detail: err.error_detail });
    log('grant.error', gty, err.message, err.error_detail || '');
  });
  provider.on('backchannel.success', (_ctx, client, accountId, sid) => {
    stats.backchannel.push({ client_id: client.clientId, sub: accountId, sid, ok: true });
    log('backchannel.success', client.clientId, sid);
  });
  provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => {
    stats.backchannel.push({
      client_id: client.clientId, sub: accountId, sid, ok: false, error: String(err.cause || err.message),
    });
    log('backchannel.error', client.clientId, err.message, err.cause || '');
  });
  provider.on('pushed_authorization_request.success', (_ctx, client) => {
    stats.pushedRequests[client.clientId] = (stats.pushedRequests[client.clientId] || 0) + 1;
    log('pushed_authorization_request.success', client.clientId);
  });
  provider.on('pushed_authorization_request.error', (_ctx, err) => log('pushed_authorization_request.error', err.message, err.error_description || ''));
  provider.on('end_session.success', () => {
    stats.endSessions += 1;
    log('end_session.success');
  });
  provider.on('server_error', (_ctx, err) => {
    stats.serverErrors.push(String(err.stack || err));
    log('server_error', err);
  });
  provider.on('authorization.error', (_ctx, err) => log('authorization.error', err.message, err.error_description || ''));
  return provider;
}

let provider = build();
let handler = provider.callback();

// ---------------------------------------------------------------------------------------------
// Interactions: a minimal sign-in form with a Cancel link. Consent is never asked (see
// loadExistingGrant); should it come up anyway, it is granted at once.

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;margin:3em auto;max-width:22em}input,button{display:block;width:100%;margin:.5em 0;padding:.4em}</style>
</head><body>${body}</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function interaction(req, res, url) {
  const [, , uid, action] = url.pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');

  if (action === 'abort') {
    // The user cancelled: the provider sends error=access_denied to the app's callback.
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
  }

  if (details.prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    grant.addOIDCScope(OIDC_SCOPES);
    grant.addResourceScope(RESOURCE, OIDC_SCOPES);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const email = (form.get('email') || '').trim();
    const password = form.get('password') || '';
    if (!email.includes('@') || !password) {
      return send(res, 400, 'text/html', loginPage(uid, details.params.client_id, 'Enter an e-mail address and a password.'));
    }
    const sub = subjectFor(email);
    accounts.set(sub, email);
    log('login', email, sub);
    return provider.interactionFinished(req, res, { login: { accountId: sub } }, { mergeWithLastSubmission: false });
  }

  return send(res, 200, 'text/html', loginPage(uid, details.params.client_id));
}

function loginPage(uid, clientId, error) {
  return page('Sign in - E2E Provider', `
<h1 id="op-login">Sign in to continue to ${escapeHtml(clientId)}</h1>
${error ? `<p id="op-error" role="alert">${escapeHtml(error)}</p>` : ''}
<form id="op-login-form" method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
  <label>E-mail <input id="op-email" type="email" name="email" required autofocus></label>
  <label>Password <input id="op-password" type="password" name="password" required></label>
  <button id="op-submit" type="submit">Sign in</button>
</form>
<p><a id="op-cancel" href="/interaction/${escapeHtml(uid)}/abort">Cancel</a></p>`);
}

// ---------------------------------------------------------------------------------------------
// Test hooks.

function rotateKeys() {
  const previous = signingKeys[0].kid;
  signingKeys = [newSigningKey(), signingKeys[0]];
  provider = build();
  handler = provider.callback();
  stats.rotations += 1;
  log('rotated signing key', previous, '->', signingKeys[0].kid);
  return { kid: signingKeys[0].kid, previous };
}

async function admin(req, res, url) {
  switch (`${req.method} ${url.pathname}`) {
    case 'GET /__e2e/health':
      return send(res, 200, 'application/json', JSON.stringify({ ok: true, issuer: ISSUER }));
    case 'GET /__e2e/stats':
      return send(res, 200, 'application/json', JSON.stringify({ ...stats, kid: signingKeys[0].kid }));
    case 'POST /__e2e/rotate-keys':
      return send(res, 200, 'application/json', JSON.stringify(rotateKeys()));
    default:
      return send(res, 404, 'text/plain', 'not found');
  }
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, ISSUER);
  try {
    if (url.pathname.startsWith('/__e2e/')) return await admin(req, res, url);
    if (url.pathname.startsWith('/interaction/')) return await interaction(req, res, url);
    if (url.pathname === '/keys') stats.jwksRequests += 1;
    return handler(req, res);
  } catch (err) {
    log('handler error', req.method, url.pathname, err);
    if (!res.headersSent) send(res, err.statusCode || 500, 'text/html', page('Provider error', `<h1 id="op-error">${escapeHtml(err.message)}</h1>`));
    return undefined;
  }
});

const { hostname, port } = new URL(ISSUER);
server.listen(Number(port), hostname, () => {
  log(`provider listening at ${ISSUER} (access tokens live ${ACCESS_TOKEN_TTL}s; clients: ${CLIENTS.map((c) => c.client_id).join(', ')})`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
