// Every route of the OpenAPI document, fed bad input: malformed and oversized
// bodies, wrong types, out-of-range and unknown fields, bad parameters, missing
// and wrong credentials. Each must answer a 4xx in the one error shape and
// leave the store exactly as it was, events included.
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { client, startTestServer, until, type Client, type TestServer } from './helpers.ts';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  items?: Schema;
  maxItems?: number;
  anyOf?: Schema[];
  oneOf?: Schema[];
  patternProperties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
};
type Operation = {
  parameters?: { in: string; name: string; schema: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
};

let srv: TestServer;
let admin: Client;
let agentToken: string;
let real: Record<string, string>;
let sent = 0;

function snapshot(dir: string): string {
  const db = new SQLite(join(dir, 'strata.db'), { readonly: true });
  const tables = db
    .prepare("select name from sqlite_master where type='table' and name not like 'sqlite_%' order by name")
    .all() as { name: string }[];
  const dump = tables.map(({ name }) => [name, db.prepare(`select * from "${name}" order by rowid`).all()]);
  db.close();
  return JSON.stringify(dump);
}

before(async () => {
  // Heartbeats an hour apart: the registered host below has no agent, and must
  // stay ready however long the walk takes, or liveness would change the store.
  // It presents hundreds of bad credentials on purpose: no lockout of its address.
  srv = await startTestServer({ heartbeatSeconds: 3600, limits: { authFailureBurst: 1_000_000 } });
  admin = client(srv.url, srv.adminToken);
  const project = (await admin.post('/v1/projects', { name: 'walk', quota: { instances: 50 } })).body;
  const user = (await admin.post('/v1/users', { name: 'walker', projects: [{ project: 'walk', role: 'member' }] }))
    .body;
  const token = (await admin.post('/v1/tokens', { name: 't', user: 'walker' })).body;
  const jt = (await admin.post('/v1/join-tokens', { description: 'walk' })).body;
  const reg = await admin.post('/v1/agent/register', {
    joinToken: jt.secret,
    name: 'walk-host',
    fingerprint: { capacity: { vcpus: 4, memoryMib: 8192, diskGib: 100 }, drivers: ['container'] },
  });
  assert.equal(reg.status, 201);
  agentToken = reg.body.token;
  const inst = (
    await admin.post('/v1/instances', { project: 'walk', kind: 'container', image: 'busybox', name: 'one' })
  ).body;
  const dep = await admin.post('/v1/deployments', {
    project: 'walk',
    name: 'walk-web',
    replicas: 1,
    template: { kind: 'container', image: 'busybox' },
  });
  assert.equal(dep.status, 201);
  real = {
    project: project.id,
    user: user.id,
    id: inst.id,
    token: token.id,
    host: reg.body.host.id,
    joinToken: jt.id,
    deployment: dep.body.id,
  };
  // The placer puts it and the deployment's replica on the host; after that nothing changes the store by itself.
  await until('the instance is placed', async () =>
    (await admin.get(`/v1/instances/${inst.id}`)).body.state === 'scheduled' ? true : undefined,
  );
  await until('the replica is placed and the status written', async () => {
    const d = (await admin.get(`/v1/deployments/${real.deployment}`)).body;
    const placed = d.instances.length === 1 && d.instances[0].state === 'scheduled';
    return placed && d.status.observedGeneration === 1 && d.status.replicas === 1 ? true : undefined;
  });
});
after(() => srv.close());

/** Values that violate `s`, each with a reason. */
function badValues(s: Schema): [string, unknown][] {
  const out: [string, unknown][] = [];
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (s.anyOf) {
    if (!s.anyOf.some(a => a.type === 'object')) out.push(['object where a scalar is expected', { x: 1 }]);
    return out;
  }
  if (types.includes('string')) {
    out.push(['number for a string', 12345], ['object for a string', { a: 1 }]);
    if (s.enum) out.push(['value outside the enum', 'not-a-valid-choice']);
    if (s.maxLength !== undefined) out.push(['string over maxLength', 'a'.repeat(s.maxLength + 1)]);
    if (s.minLength) out.push(['string under minLength', '']);
    if (s.pattern) out.push(['string off the pattern', 'UPPER case!']);
  } else if (types.includes('integer') || types.includes('number')) {
    out.push(['string for a number', 'seven'], ['array for a number', [1]]);
    if (types.includes('integer')) out.push(['fraction for an integer', 1.5]);
    if (s.minimum !== undefined) out.push(['below minimum', s.minimum - 1]);
    if (s.maximum !== undefined) out.push(['above maximum', s.maximum + 1]);
  } else if (types.includes('boolean')) {
    out.push(['string for a boolean', 'yes']);
  } else if (types.includes('array')) {
    out.push(['object for an array', { a: 1 }]);
    if (s.items) for (const [why, v] of badValues(s.items).slice(0, 2)) out.push([`array item: ${why}`, [v]]);
    if (s.maxItems !== undefined) out.push(['array over maxItems', Array.from({ length: s.maxItems + 1 }, () => 'x')]);
  } else if (types.includes('object')) {
    out.push(['array for an object', []], ['string for an object', 'x']);
    if (s.additionalProperties === false) out.push(['unknown field in a nested object', { surely_unknown: 1 }]);
  }
  return out;
}

/** A body that satisfies the required fields well enough for the bad field to be the only fault. */
function minimalValid(path: string, method: string): Record<string, unknown> {
  const template = { kind: 'container', image: 'busybox' };
  if (path === '/v1/deployments') return { project: 'walk', name: 'walk-new', replicas: 1, template };
  if (path === '/v1/deployments/{id}') return method === 'PATCH' ? { replicas: 2 } : { replicas: 2, template };
  if (path === '/v1/deployments/{id}/rollback') return { toRevision: 1 };
  if (path === '/v1/projects') return { name: 'walk-new' };
  if (path === '/v1/users') return { name: 'walk-new' };
  if (path === '/v1/tokens') return { name: 'walk-new' };
  if (path === '/v1/hosts') return { name: 'walk-new', capacity: { vcpus: 1, memoryMib: 1, diskGib: 1 } };
  if (path === '/v1/instances') return { project: 'walk', kind: 'container', image: 'busybox', name: 'walk-new' };
  if (path === '/v1/groups') return { project: 'walk', name: 'walk-new', policy: 'anti-affinity', level: 'zone' };
  if (path === '/v1/secrets') return { project: 'walk', name: 'walk-new', value: 'v' };
  if (path === '/v1/secrets/{id}') return { value: 'v' };
  if (path === '/v1/agent/register')
    return {
      joinToken: 'sjt_wrong',
      name: 'walk-new',
      fingerprint: { capacity: { vcpus: 1, memoryMib: 1, diskGib: 1 }, drivers: [] },
    };
  if (path === '/v1/nodes') return { name: 'walk-new', bmc: 'ipmi://u:p@127.0.0.1:9' };
  if (path === '/v1/nodes/{id}/provision') return { action: 'manage' };
  if (path === '/v1/nodes/{id}/maintenance') return { on: true };
  if (path === '/v1/agent/nodes/{id}/step')
    return { step: 'verifying', stepStartedAt: '2026-01-01T00:00:00.000Z', ok: true };
  if (path.endsWith('/members/{user}')) return { role: 'reader' };
  if (path.endsWith('/status')) return { state: 'running' };
  return {};
}

/** The `kind` a member of a union of kinds' specs takes (nothing for a plain schema). */
function kindOf(schema: Schema): Record<string, unknown> {
  const kind = schema.properties?.kind?.enum;
  return kind?.length === 1 ? { kind: kind[0] } : {};
}

function fill(path: string, params: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_, k: string) => encodeURIComponent(params[k] ?? 'x'));
}

function realParams(path: string): Record<string, string> {
  const id = path.startsWith('/v1/users')
    ? real.user!
    : path.startsWith('/v1/tokens')
      ? real.token!
      : path.startsWith('/v1/hosts')
        ? real.host!
        : path.startsWith('/v1/join-tokens')
          ? real.joinToken!
          : path.startsWith('/v1/deployments')
            ? real.deployment!
            : real.id!;
  return { id, project: real.project!, user: real.user! };
}

function assertErrorShape(label: string, status: number, body: unknown): void {
  assert.ok(status >= 400 && status < 500, `${label}: status ${status} ${JSON.stringify(body)}`);
  assert.ok(body && typeof body === 'object' && 'error' in body, `${label}: no error object: ${JSON.stringify(body)}`);
  const e = (body as { error: Record<string, unknown> }).error;
  assert.equal(typeof e.code, 'string', label);
  assert.equal(typeof e.message, 'string', label);
  assert.ok((e.message as string).length > 0, label);
  for (const k of Object.keys(e)) assert.ok(['code', 'message', 'details'].includes(k), `${label}: stray key ${k}`);
}

test('every route refuses bad input with a 4xx, one error shape, and no change to the store', async () => {
  const doc = (await admin.get('/openapi.json')).body as { paths: Record<string, Record<string, Operation>> };
  const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ path, method: method.toUpperCase(), op })),
  );
  assert.ok(routes.length >= 30, `the document lists ${routes.length} operations`);
  const userToken = (await admin.post('/v1/tokens', { name: 'walk-user' })).body.secret as string;
  const afterSetup = snapshot(srv.dataDir);

  for (const { path, method, op } of routes) {
    const isAgent = path.startsWith('/v1/agent/');
    const token = isAgent ? agentToken : userToken;
    // `null` means no Authorization header at all.
    const call = (p: string, body: unknown, headers: Record<string, string>, tok: string | null) =>
      client(srv.url, tok ?? undefined).call(method, p, body, headers);
    const check = async (
      label: string,
      p: string,
      body?: unknown,
      headers: Record<string, string> = {},
      tok: string | null = token,
    ) => {
      const res = await call(p, body, headers, tok);
      sent++;
      assertErrorShape(`${method} ${path} ${label}`, res.status, res.body);
      return res.status;
    };
    // Required query parameters get a plain value, so each check fails for its own reason.
    const required = (op.parameters ?? [])
      .filter(q => q.in === 'query' && (q as { required?: boolean }).required)
      .map(q => `${q.name}=true`);
    const at = (base: string, ...extra: string[]) => {
      const q = [...required, ...extra].join('&');
      return q ? `${base}?${q}` : base;
    };
    const good = at(fill(path, realParams(path)));
    const bare = fill(path, realParams(path));
    const hasBody = !!op.requestBody;

    // Credentials.
    if (path !== '/v1/agent/register') {
      await check('without a token', good, hasBody ? minimalValid(path, method) : undefined, {}, null).then(s =>
        assert.equal(s, 401, `${method} ${path}`),
      );
      await check(
        'with a wrong token',
        good,
        hasBody ? minimalValid(path, method) : undefined,
        {},
        'stk_not-a-real-token',
      ).then(s => assert.equal(s, 401, `${method} ${path}`));
      // whoami answers any valid credential, agents' included.
      if (path !== '/v1/whoami')
        await check(
          isAgent ? 'with a user token' : 'with an agent token',
          good,
          hasBody ? minimalValid(path, method) : undefined,
          {},
          isAgent ? srv.adminToken : agentToken,
        ).then(s => assert.equal(s, 403, `${method} ${path} with the other kind of credential`));
    }

    // Path parameters: unknown ids and malformed values.
    if (path.includes('{')) {
      const unknown = at(
        fill(path, { id: 'ins_00000000000000000000000000', project: 'no-such-project', user: 'no-such-user' }),
      );
      const code = await check('with unknown ids', unknown, hasBody ? minimalValid(path, method) : undefined);
      assert.ok([403, 404].includes(code), `${method} ${path} unknown id answered ${code}`);
      await check(
        'with an over-long id',
        fill(path, { id: 'x'.repeat(300), project: 'x'.repeat(300), user: 'x'.repeat(300) }),
        hasBody ? minimalValid(path, method) : undefined,
      );
    }

    // Query strings.
    const qs = op.parameters?.filter(p => p.in === 'query') ?? [];
    await check(
      'with an unknown query parameter',
      at(bare, 'surely_unknown=1'),
      hasBody ? minimalValid(path, method) : undefined,
    );
    for (const q of qs) {
      for (const [why, v] of badValues(q.schema)) {
        // In a query string everything is text: only values no coercion can save.
        if (typeof v === 'object' || why === 'number for a string') continue;
        await check(
          `query ${q.name}: ${why}`,
          at(bare, `${q.name}=${encodeURIComponent(String(v))}`),
          hasBody ? minimalValid(path, method) : undefined,
        );
      }
    }
    if (qs.some(q => q.name === 'cursor')) await check('with a forged cursor', at(bare, 'cursor=garbage'));

    // Bodies.
    const body = op.requestBody?.content['application/json']?.schema;
    // A union (the instance spec: one schema per kind) is walked one member at a time.
    for (const schema of body?.oneOf ?? (body ? [body] : [])) {
      const base = { ...minimalValid(path, method), ...kindOf(schema) };
      await check('with malformed JSON', good, '{"a":', { 'content-type': 'application/json' });
      await check('with an empty JSON body', good, '', { 'content-type': 'application/json' });
      await check('with an array body', good, [], {});
      await check('with a string body', good, '"text"', { 'content-type': 'application/json' });
      await check('with a number body', good, '42', { 'content-type': 'application/json' });
      await check('with a text/plain body', good, 'name=x', { 'content-type': 'text/plain' });
      await check('with an oversized body', good, { ...base, pad: 'x'.repeat(1024 * 1024 + 10) });
      await check('with an unknown field', good, { ...base, surely_unknown: true });
      for (const req of schema.required ?? []) {
        const { [req]: _dropped, ...rest } = base;
        await check(`without required ${req}`, good, rest);
      }
      for (const [name, prop] of Object.entries(schema.properties ?? {})) {
        for (const [why, v] of badValues(prop)) await check(`body ${name}: ${why}`, good, { ...base, [name]: v });
        if (prop.properties) {
          for (const [inner, innerProp] of Object.entries(prop.properties)) {
            for (const [why, v] of badValues(innerProp).slice(0, 3))
              await check(`body ${name}.${inner}: ${why}`, good, { ...base, [name]: { [inner]: v } });
          }
        }
      }
    }
  }
  assert.equal(snapshot(srv.dataDir), afterSetup, 'no refused request changed the store or logged an event');
  console.log(`# ${sent} bad requests over ${routes.length} operations, all refused with 4xx, store unchanged`);
});

test('unknown routes answer 404 in the same error shape', async () => {
  const res = await admin.get('/v1/nothing-here');
  assertErrorShape('GET /v1/nothing-here', res.status, res.body);
  assert.equal(res.status, 404);
});

/** Strings a hostile tenant sends, meant for a shell, a path, a URL or a runtime. */
const hostileStrings: [string, string][] = [
  ['path traversal', '../../etc/passwd'],
  ['a redirect target', '../../127.0.0.1:7399/x?'],
  ['an option', '--privileged'],
  ['option separators', '/t:size=200m,exec,suid'],
  ['shell syntax', '$(id) `id` ; rm -rf / #'],
  ['a NUL byte', 'x\u0000y'],
  ['a line break', 'x\ny: z'],
  ['1 MiB', 'x'.repeat(1 << 20)],
];
/** Raw JSON values: numbers no double holds, and nesting deeper than any parser's stack. */
const hostileRaw: [string, string][] = [
  ['Infinity (1e400)', '1e400'],
  ['-Infinity (-1e400)', '-1e400'],
  ['an unsafe integer', '1e20'],
  ['deep nesting', `${'['.repeat(100_000)}${']'.repeat(100_000)}`],
  ['deep nesting in an object', `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`],
];

test('hostile strings, numbers and nesting in every field answer no 5xx', async () => {
  const doc = (await admin.get('/openapi.json')).body as { paths: Record<string, Record<string, Operation>> };
  let tried = 0;
  const expectNo5xx = async (label: string, method: string, path: string, body: string | undefined, token: string) => {
    const res = await client(srv.url, token).call(
      method,
      path,
      body,
      body === undefined ? {} : { 'content-type': 'application/json' },
    );
    tried++;
    assert.ok(res.status < 500, `${label}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    if (res.status >= 400) assertErrorShape(label, res.status, res.body);
  };
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      const method = m.toUpperCase();
      const token = path.startsWith('/v1/agent/') ? agentToken : srv.adminToken;
      // Unknown ids: nothing that exists is changed by what is tried here.
      const unknownIds = fill(path, {
        id: 'ins_00000000000000000000000000',
        project: 'no-such-project',
        user: 'no-such-user',
      });
      const required = (op.parameters ?? [])
        .filter(q => q.in === 'query' && (q as { required?: boolean }).required)
        .map(q => `${q.name}=true`);
      const withQuery = (base: string, extra?: string) => {
        const q = [...required, ...(extra ? [extra] : [])].join('&');
        return q ? `${base}?${q}` : base;
      };
      if (path.includes('{')) {
        for (const [why, v] of hostileStrings) {
          if (v.length > 4096) continue;
          await expectNo5xx(
            `${method} ${path} path parameter: ${why}`,
            method,
            withQuery(fill(path, { id: v, project: v, user: v })),
            undefined,
            token,
          );
        }
      }
      if (method === 'GET') {
        for (const q of op.parameters?.filter(p => p.in === 'query') ?? []) {
          for (const [why, v] of [
            ...hostileStrings.filter(([, s]) => s.length < 4096),
            ...hostileRaw.filter(([w]) => !w.startsWith('deep')),
          ]) {
            await expectNo5xx(
              `${method} ${path} query ${q.name}: ${why}`,
              method,
              withQuery(path.includes('{') ? fill(path, realParams(path)) : path, `${q.name}=${encodeURIComponent(v)}`),
              undefined,
              token,
            );
          }
        }
      }
      const body = op.requestBody?.content['application/json']?.schema;
      for (const schema of body?.oneOf ?? (body ? [body] : [])) {
        const base = { ...minimalValid(path, method), ...kindOf(schema) };
        // Every string field (and strings one level down), every field with raw values.
        const fields: { set: (v: unknown) => Record<string, unknown>; name: string; schema: Schema }[] = [];
        for (const [name, prop] of Object.entries(schema.properties ?? {})) {
          fields.push({ name, schema: prop, set: v => ({ ...base, [name]: v }) });
          for (const [inner, innerProp] of Object.entries(prop.properties ?? {}))
            fields.push({
              name: `${name}.${inner}`,
              schema: innerProp,
              set: v => ({ ...base, [name]: { [inner]: v } }),
            });
          if (prop.patternProperties)
            fields.push({
              name: `${name}{}`,
              schema: Object.values(prop.patternProperties)[0]!,
              set: v => ({ ...base, [name]: { k: v } }),
            });
          if (prop.items) fields.push({ name: `${name}[]`, schema: prop.items, set: v => ({ ...base, [name]: [v] }) });
        }
        for (const f of fields) {
          for (const [why, v] of hostileStrings)
            await expectNo5xx(
              `${method} ${path} body ${f.name}: ${why}`,
              method,
              unknownIds,
              JSON.stringify(f.set(v)),
              token,
            );
          for (const [why, raw] of hostileRaw) {
            const text = JSON.stringify(f.set('\u0001RAW\u0001')).replace('"\\u0001RAW\\u0001"', raw);
            await expectNo5xx(`${method} ${path} body ${f.name}: ${why}`, method, unknownIds, text, token);
          }
        }
        // Hostile keys where maps take any key.
        for (const [name, prop] of Object.entries(schema.properties ?? {})) {
          if (!prop.patternProperties) continue;
          for (const [why, v] of hostileStrings) {
            if (v.length > 4096) continue;
            await expectNo5xx(
              `${method} ${path} body ${name} key: ${why}`,
              method,
              unknownIds,
              JSON.stringify({ ...base, [name]: { [v]: 'x' } }),
              token,
            );
            await expectNo5xx(
              `${method} ${path} body ${name} nested value under ${why}`,
              method,
              unknownIds,
              JSON.stringify({ ...base, [name]: { [v]: { x: 1 } } }),
              token,
            );
          }
        }
      }
    }
  }
  console.log(`# ${tried} hostile requests, none answered 5xx`);
});
