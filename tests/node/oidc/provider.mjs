// A real OpenID provider (oidc-provider 9) on loopback for relay's identity tests.
//
//   node provider.mjs --port P [--config-file FILE.json | --config JSON]
//
// Issuer http://127.0.0.1:P. Prints `READY http://127.0.0.1:P` on stdout once listening and exits
// when its stdin closes, so it never outlives the test that started it. tests/support/oidc.py drives
// it; its docstring documents the clients, users, token formats and the configuration keys below.
//
// What is added to the library (everything else is oidc-provider's own behaviour):
// - RFC 8628 `interval` in the device authorization response and `slow_down` when a client polls a
//   device code faster than that (the library has the error class but does not enforce polling);
// - an RFC 8693 token-exchange grant issuing JWT access tokens for a resource (RFC 8707);
// - an optional JSON file adapter so a stop/start on the same port keeps grants and refresh tokens;
// - POST /__test/config: merge runtime settings (ttl, device, tokenExchange, resourceScopes, users).

import * as fs from 'node:fs';
import * as http from 'node:http';

import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';
// The built-in device_code handler is wrapped to enforce the polling interval; the package has no
// "exports" map, so these modules are importable, and the version is pinned exactly in package.json.
import * as deviceCodeGrant from 'oidc-provider/lib/actions/grants/device_code.js';
import * as grantHelpers from 'oidc-provider/lib/helpers/grants.js';

const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TT = 'urn:ietf:params:oauth:token-type:';

// --------------------------------------------------------------------------- configuration

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--port') { out.port = Number(value); i += 1; }
    else if (flag === '--config') { out.config = JSON.parse(value); i += 1; }
    else if (flag === '--config-file') { out.config = JSON.parse(fs.readFileSync(value, 'utf8')); i += 1; }
    else throw new Error(`unknown argument ${flag}`);
  }
  return out;
}

const DEFAULT_USERS = {
  alice: {
    email: 'alice@example.test', email_verified: true, name: 'Alice Admin',
    preferred_username: 'alice', groups: ['payments-admins'],
  },
  bob: {
    email: 'bob@example.test', email_verified: true, name: 'Bob Reader',
    preferred_username: 'bob', groups: ['payments-readers'],
  },
};

function settingsFrom(config) {
  return {
    users: config.users ?? DEFAULT_USERS,
    resourceScopes: config.resourceScopes ?? 'mcp:tools mcp:admin',
    ttl: {
      accessToken: 300, idToken: 3600, refreshToken: 86400, deviceCode: 600, clientCredentials: 300,
      ...config.ttl,
    },
    device: { interval: 5, slowDownIncrement: 5, ...config.device },
    tokenExchange: { refuse: null, ...config.tokenExchange },
  };
}

function merge(target, patch) {
  for (const [key, value] of Object.entries(patch)) {
    if (value && typeof value === 'object' && !Array.isArray(value) && target[key] && typeof target[key] === 'object'
        && !Array.isArray(target[key]) && key !== 'users') {
      merge(target[key], value);
    } else {
      target[key] = value;
    }
  }
}

const args = parseArgs(process.argv.slice(2));
const config = args.config ?? {};
const port = args.port ?? config.port ?? 0;
const settings = settingsFrom(config);

const PRIVATE_JWK_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'key_ops'];
const publicJwk = (jwk) => Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_JWK_FIELDS.includes(k)));

async function signingKeys() {
  if (config.keys?.length) return config.keys;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return [{ ...(await exportJWK(privateKey)), kid: 'relay-test-rs256', alg: 'RS256', use: 'sig' }];
}

function defaultClients() {
  const clients = [
    {
      client_id: 'relay-cli',
      client_name: 'relay CLI',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_CODE, 'refresh_token', TOKEN_EXCHANGE],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'ci-bot',
      client_secret: config.ciBotSecret ?? 'ci-bot-secret',
      client_name: 'CI bot',
      token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
      grant_types: ['client_credentials', TOKEN_EXCHANGE],
      response_types: [],
      redirect_uris: [],
    },
  ];
  if (config.ciBotJwks) {
    clients.push({
      client_id: 'ci-bot-jwt',
      client_name: 'CI bot (private_key_jwt)',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: config.ciBotJwks,
      grant_types: ['client_credentials', TOKEN_EXCHANGE],
      response_types: [],
      redirect_uris: [],
    });
  }
  return clients;
}

// --------------------------------------------------------------------------- persistence

// A file-backed adapter: the state survives a stop/start of the provider on the same port.
// Expired entries stay readable for `grace` seconds so an expired device code still answers
// `expired_token` instead of "not found", as the library's memory adapter does.
function fileAdapterFactory(file, grace) {
  const now = () => Date.now();
  let db = {};
  if (fs.existsSync(file)) db = JSON.parse(fs.readFileSync(file, 'utf8'));
  const flush = () => {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(db), { mode: 0o600 });
    fs.renameSync(tmp, file);
  };
  const get = (key) => {
    const entry = db[key];
    if (!entry) return undefined;
    if (entry.expiresAt !== null && entry.expiresAt + grace * 1000 <= now()) {
      delete db[key];
      return undefined;
    }
    return entry.value;
  };
  const set = (key, value, expiresIn) => {
    db[key] = { value, expiresAt: typeof expiresIn === 'number' ? now() + expiresIn * 1000 : null };
  };

  return (model) => ({
    key: (id) => `${model}:${id}`,
    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      set(key, payload, expiresIn);
      if (model === 'Session') set(`sessionUid:${payload.uid}`, id, expiresIn);
      if (payload.userCode) set(`userCode:${payload.userCode}`, id, expiresIn);
      if (payload.grantId) {
        const members = new Set(get(`grant:${payload.grantId}`) ?? []);
        members.add(key);
        set(`grant:${payload.grantId}`, [...members], null);
      }
      flush();
    },
    async find(id) { return get(this.key(id)); },
    async findByUid(uid) { const id = get(`sessionUid:${uid}`); return id && get(this.key(id)); },
    async findByUserCode(code) { const id = get(`userCode:${code}`); return id && get(this.key(id)); },
    async consume(id) {
      const entry = db[this.key(id)];
      if (entry) { entry.value.consumed = Math.floor(now() / 1000); flush(); }
    },
    async destroy(id) { delete db[this.key(id)]; flush(); },
    async revokeByGrantId(grantId) {
      for (const key of get(`grant:${grantId}`) ?? []) delete db[key];
      delete db[`grant:${grantId}`];
      flush();
    },
  });
}

// --------------------------------------------------------------------------- provider

const keys = await signingKeys();
const issuerFor = (p) => `http://127.0.0.1:${p}`;

// The issuer needs the port; with --port 0 we bind first and build the provider afterwards.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = issuerFor(server.address().port);
const ownJwks = createLocalJWKSet({ keys: keys.map(publicJwk) });
const workloadIssuers = Object.fromEntries(
  Object.entries(config.workloadIssuers ?? {}).map(([iss, jwks]) => [iss, createLocalJWKSet(jwks)]),
);

function resourceServerInfo(resource) {
  let url;
  try { url = new URL(resource); } catch { throw new errors.InvalidTarget('resource is not a URL'); }
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) || url.hash) {
    throw new errors.InvalidTarget('only loopback resources are known to this test provider');
  }
  return {
    scope: settings.resourceScopes,
    audience: resource,
    accessTokenTTL: settings.ttl.accessToken,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

const provider = new Provider(issuer, {
  clients: config.clients ?? defaultClients(),
  jwks: { keys },
  cookies: { keys: config.cookieKeys ?? ['relay-test-cookie-key'] },
  adapter: config.stateFile ? fileAdapterFactory(config.stateFile, 15) : undefined,
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  // ID tokens carry the scope's claims even when an access token is issued too.
  conformIdTokenClaims: false,
  // The library recomputes `extra` when it saves a token; token exchange parks its `act` here.
  extraTokenClaims: async (ctx, token) => token.exchangeClaims,
  async findAccount(ctx, sub) {
    const user = settings.users[sub];
    if (!user) return undefined;
    return { accountId: sub, async claims() { return { sub, ...user }; } };
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => resourceServerInfo(resource),
    },
  },
  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? settings.ttl.accessToken,
    ClientCredentials: (ctx, token) => settings.ttl.clientCredentials,
    DeviceCode: () => settings.ttl.deviceCode,
    IdToken: () => settings.ttl.idToken,
    RefreshToken: () => settings.ttl.refreshToken,
    Interaction: 600,
    Session: 3600,
    Grant: 86400,
  },
});

// ---- RFC 8628 polling interval and slow_down

provider.on('device_authorization.success', (ctx, body) => {
  body.interval = settings.device.interval;
});

const polls = new Map(); // device_code -> { last: ms, interval: s }
const boundHelpers = Object.fromEntries(
  Object.entries(grantHelpers).map(([name, helper]) => [name, helper.bind(undefined, provider)]),
);
const deviceCodeHandler = deviceCodeGrant.handler.bind(undefined, provider, boundHelpers);
provider.registerGrantType(
  DEVICE_CODE,
  async (ctx) => {
    const code = ctx.oidc.params.device_code;
    if (code && settings.device.interval > 0) {
      const at = Date.now();
      const seen = polls.get(code);
      if (seen && at < seen.last + seen.interval * 1000) {
        seen.interval += settings.device.slowDownIncrement;
        seen.last = at;
        throw new errors.SlowDown();
      }
      polls.set(code, { last: at, interval: seen?.interval ?? settings.device.interval });
    }
    return deviceCodeHandler(ctx);
  },
  [...deviceCodeGrant.parameters, 'resource'],
  ['resource'],
);

// ---- RFC 8693 token exchange

const looksLikeJwt = (value) => value.split('.').length === 3;

// The library's InvalidGrant keeps its argument as a log-only detail; tests want to read why.
function invalidGrant(description) {
  const error = new errors.InvalidGrant(description);
  error.error_description = description;
  return error;
}

async function verifyOwnJwt(value, options = {}) {
  try {
    const { payload } = await jwtVerify(value, ownJwks, { issuer, ...options });
    return payload;
  } catch (cause) {
    throw invalidGrant(`subject/actor token is invalid: ${cause.code ?? cause.message}`);
  }
}

// Returns { sub, scope } of a subject or actor token, or throws invalid_grant.
async function validateToken(ctx, value, type) {
  switch (type) {
    case `${TT}access_token`: {
      if (looksLikeJwt(value)) {
        const payload = await verifyOwnJwt(value, { typ: 'at+jwt' });
        return { sub: payload.sub, scope: payload.scope };
      }
      // Opaque: a user's access token, or a client's own (client_credentials) token.
      const token = (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
      if (!token || token.isExpired) throw invalidGrant('subject/actor token is invalid or expired');
      return { sub: token.accountId ?? token.clientId, scope: token.scope };
    }
    case `${TT}id_token`: {
      const payload = await verifyOwnJwt(value, { audience: ctx.oidc.client.clientId });
      return { sub: payload.sub, scope: undefined };
    }
    case `${TT}jwt`: {
      // A workload identity token (e.g. a CI job's) signed by an issuer this provider trusts.
      let iss;
      try { ({ iss } = JSON.parse(Buffer.from(value.split('.')[1], 'base64url').toString('utf8'))); } catch { /* below */ }
      const jwks = workloadIssuers[iss];
      if (!jwks) throw invalidGrant('jwt issuer is not trusted');
      try {
        const { payload } = await jwtVerify(value, jwks, { issuer: iss, audience: issuer });
        return { sub: payload.sub, scope: undefined };
      } catch (cause) {
        throw invalidGrant(`jwt is invalid: ${cause.code ?? cause.message}`);
      }
    }
    default:
      throw new errors.InvalidRequest('unsupported token type');
  }
}

provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx) => {
    const { refuse } = settings.tokenExchange;
    if (refuse) {
      const Refusal = { unauthorized_client: errors.UnauthorizedClient, access_denied: errors.AccessDenied }[refuse]
        ?? errors.InvalidGrant;
      throw new Refusal('token exchange is refused by this provider (test configuration)');
    }
    const p = ctx.oidc.params;
    for (const name of ['subject_token', 'subject_token_type']) {
      if (!p[name]) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
    }
    if (p.requested_token_type && p.requested_token_type !== `${TT}access_token`) {
      throw new errors.InvalidRequest('only access tokens can be requested');
    }
    const subject = await validateToken(ctx, p.subject_token, p.subject_token_type);
    let actor;
    if (p.actor_token) {
      if (!p.actor_token_type) throw new errors.InvalidRequest("missing required parameter 'actor_token_type'");
      actor = await validateToken(ctx, p.actor_token, p.actor_token_type);
    }

    const resources = [p.resource, p.audience].flat().filter(Boolean);
    if (resources.length !== 1) {
      throw new errors.InvalidTarget('exactly one resource or audience value is required');
    }
    const info = resourceServerInfo(resources[0]);
    const allowed = new Set(info.scope.split(' '));
    const requested = p.scope ? p.scope.split(' ') : [...allowed];
    const refused = requested.filter((scope) => !allowed.has(scope));
    if (refused.length) throw new errors.InvalidScope('requested scope is not allowed', refused.join(' '));

    let lifetime = settings.ttl.accessToken;
    if (p.requested_lifetime !== undefined) {
      const asked = Number(p.requested_lifetime);
      if (!Number.isInteger(asked) || asked <= 0) {
        throw new errors.InvalidRequest('requested_lifetime must be a positive integer (seconds)');
      }
      lifetime = Math.min(asked, lifetime);
    }

    const token = new provider.AccessToken({
      accountId: subject.sub,
      client: ctx.oidc.client,
      gty: 'token_exchange',
      scope: requested.join(' ') || undefined,
      expiresIn: lifetime,
    });
    if (actor) token.exchangeClaims = { act: { sub: actor.sub } };
    token.resourceServer = new provider.ResourceServer(resources[0], info);
    ctx.oidc.entity('AccessToken', token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      issued_token_type: `${TT}access_token`,
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope: token.scope,
    };
  },
  ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'resource', 'audience',
    'scope', 'requested_token_type', 'requested_lifetime'],
  ['resource', 'audience'],
);

// Why a grant failed goes to stderr (tests show the log tail); never the token values.
provider.on('grant.error', (ctx, error) => {
  process.stderr.write(`grant.error ${ctx.oidc.params?.grant_type}: ${error.error} ${error.error_description ?? ''} ${error.error_detail ?? ''}\n`);
});

// ---- runtime settings for tests

provider.use(async (ctx, next) => {
  if (ctx.path !== '/__test/config') return next();
  if (ctx.method === 'POST') {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    merge(settings, JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
  } else if (ctx.method !== 'GET') {
    ctx.status = 405;
    return undefined;
  }
  ctx.body = settings;
  return undefined;
});

server.on('request', provider.callback());
process.stdout.write(`READY ${issuer}\n`);

// Exit when the test closes our stdin (or dies): never outlive it.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
