import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CredentialProviderContract, type SecretPayload, type SecretValue, type SecretVersion } from '../contracts/credentialProvider.ts';
import type { Proxied } from '../contracts/operation.ts';
import { isWorkerManagerError, type WorkerManagerError } from '../errors/WorkerManagerError.ts';

/** One running credential plugin to test, made fresh by {@link CredentialConformanceTarget.setup}. */
export interface CredentialConformanceSession {
  /** The plugin under test: the in-process harness proxy (`createPluginHarness(...).proxy`), or the host's sandbox proxy. */
  credentials: Proxied<CredentialProviderContract>;
  /**
   * What the plugin logged so far (say `() => harness.logs`). When given, the suite also checks that no value it wrote
   * appears in any log record.
   */
  logs?: () => readonly unknown[];
  /** Releases the plugin and whatever the session started (a test double, a temporary folder). */
  teardown(): Promise<void>;
}

/** Where a secret whose read fails with `WM_ERR_SECRET_EXPIRED` is: see {@link CredentialConformanceTarget.expired}. */
export interface ExpiredSecretRef {
  name: string;
  /** A version id or stage; absent reads `current`. */
  version?: string;
}

/** What {@link runCredentialConformance} needs to know about a credential plugin. */
export interface CredentialConformanceTarget {
  /** Shown in the test names. */
  name: string;
  /** The capabilities the plugin declares (name to version), e.g. the `capabilities` of its definition. Tests follow them. */
  capabilities: Record<string, string>;
  /**
   * A fresh plugin instance over an empty (or at least private) backend. The suite calls it once for its main session
   * and makes every secret name unique (`<namePrefix><run>-<test>-<n>`), so a shared backend works too.
   */
  setup(): Promise<CredentialConformanceSession>;
  /**
   * The plugin's size limit in UTF-8 bytes of a string value, as configured in `setup`. When given, the suite checks
   * that a string of exactly this many bytes is accepted and one byte more fails with `WM_ERR_SECRET_SIZE_LIMIT`
   * (needs `secret.write`).
   */
  maxValueBytes?: number;
  /** Prefix of every secret name the suite makes; default `cf-`. Names otherwise use only `a-z 0-9 -`. */
  namePrefix?: string;
  /** Whether the plugin stores key/value maps as well as strings; default true. False limits the suite to strings. */
  keyValueMaps?: boolean;
  /**
   * For a plugin that does not declare `secret.write`: creates secret `name` with `value` as its current version
   * straight in the backend (the test double), so read and rotation tests have something to read. Returns the value
   * the backend holds when it cannot store `value` as given (say a generated client secret); the suite then uses that.
   * Without `secret.write` and without `seed`, the tests that need a secret fail and say so.
   */
  seed?(session: CredentialConformanceSession, name: string, value: SecretPayload): Promise<SecretPayload | void>;
  /**
   * Makes a new version of the existing secret `name` that fails `testVersion` (a database password the database
   * refuses, a client secret the identity provider does not accept) and returns its version id. The suite expects
   * `testVersion` to answer `{ ok: false, reason }` for it (never to throw `WM_ERR_ROTATION_FAILED`: the host's
   * RotationEngine turns `ok: false` into that code) and the current version to stay untouched.
   * Without this hook the suite checks the same answer for a revoked version (needs `secret.rotate`).
   */
  failingVersion?(session: CredentialConformanceSession, name: string): Promise<string>;
  /**
   * Makes a secret (or version) whose read fails with `WM_ERR_SECRET_EXPIRED`: an expired Vault lease, an expired
   * Keycloak token (advance the double's clock, or create it with a TTL already over). Without it, `Expired` is not tested.
   */
  expired?(session: CredentialConformanceSession): Promise<ExpiredSecretRef>;
  /**
   * A fresh session whose backend authenticates the plugin but refuses it every operation (a Vault token without
   * policies, AWS keys an IAM policy denies). The suite expects `WM_ERR_PERMISSION_DENIED` from every declared operation,
   * without the value it tried to write in the error. Without it, `PermissionDenied` is not tested.
   */
  deniedSetup?(): Promise<CredentialConformanceSession>;
  /**
   * A fresh session whose backend cannot be reached (a closed port). The suite expects `WM_ERR_NETWORK`, transient,
   * from reads and writes. Without it, unreachable backends are not tested.
   */
  unreachableSetup?(): Promise<CredentialConformanceSession>;
  /** Timeout of each test, in ms before {@link CredentialConformanceTarget.timeFactor | timeFactor} scales it; default 60000. */
  testTimeoutMs?: number;
  /**
   * Multiplies every timeout of the suite so that a slow or busy machine makes the suite slower, never red. Default:
   * the `WM_TEST_TIME_FACTOR` environment variable, or 1. Must be a number >= 1.
   */
  timeFactor?: number;
}

type Credentials = Proxied<CredentialProviderContract>;

/** A version as the suite expects to read it back. */
interface Written {
  version: string;
  value: SecretPayload;
}

const DEFAULT_TEST_TIMEOUT_MS = 60_000;
/** The metadata fields of a version; anything else in `listVersions` could be a value. */
const VERSION_FIELDS: ReadonlySet<string> = new Set(['version', 'status', 'stages', 'createdAt', 'expiresAt']);

function readTimeFactor(value: number | string | undefined, source: string): number {
  if (value === undefined || value === '') return 1;
  const factor = Number(value);
  if (!Number.isFinite(factor) || factor < 1) throw new TypeError(`${source} must be a number >= 1, got '${String(value)}'`);
  return factor;
}

/**
 * The random parts of every value the suite wrote or read. A value is found in a text by either half of its canary,
 * so a plugin that truncates a value into a message is caught as surely as one that echoes it whole.
 */
class Canaries {
  readonly #probes = new Set<string>();

  /** A fresh string value: `tag`, a dash and 24 random hex digits. */
  value(tag: string): string {
    const canary = randomBytes(12).toString('hex');
    this.#probes.add(canary.slice(0, 12));
    this.#probes.add(canary.slice(12));
    return `${tag}-${canary}`;
  }

  /** Remembers a value the plugin made (a generated pending value): its strings must not show up either. */
  remember(value: SecretPayload): void {
    for (const text of typeof value === 'string' ? [value] : Object.values(value)) {
      // Short strings ('app') would match by chance; a generated value is long.
      if (text.length >= 16) this.#probes.add(text.slice(0, 16));
    }
  }

  /** The first remembered fragment found in `text`, if any. */
  foundIn(text: string): string | undefined {
    for (const probe of this.#probes) if (text.includes(probe)) return probe;
    return undefined;
  }
}

/** Everything an error shows: message, details and cause chain as they cross a boundary, and the stack. */
function errorText(error: unknown): string {
  if (isWorkerManagerError(error)) return `${JSON.stringify(error.toJSON())}\n${error.stack ?? ''}`;
  if (error instanceof Error) return `${error.message}\n${error.stack ?? ''}`;
  return String(error);
}

const same = (a: SecretVersion, b: SecretVersion): boolean => a.version === b.version && a.status === b.status && [...a.stages].sort().join() === [...b.stages].sort().join();
const shape = (list: readonly SecretVersion[]): string[] => list.map((v) => `${v.version}:${v.status}:[${[...v.stages].sort().join(',')}]`);

/** The version of `list` with id `version`; fails when there is none. */
function versionIn(list: readonly SecretVersion[], version: string, what: string): SecretVersion {
  const found = list.find((v) => v.version === version);
  assert.ok(found !== undefined, `${what}: listVersions has no version ${version} (${shape(list).join(' ')})`);
  return found;
}

/** Asserts `v` has exactly this status and these stages. */
function expectState(v: SecretVersion, status: SecretVersion['status'], stages: readonly string[], what: string): void {
  assert.equal(v.status, status, `${what}: version ${v.version} has status ${v.status}, expected ${status}`);
  assert.deepEqual([...v.stages].sort(), [...stages].sort(), `${what}: version ${v.version} has stages [${v.stages.join(', ')}], expected [${stages.join(', ')}]`);
}

/**
 * Registers `node:test` suites that check a credential plugin against the `credentials` contract and the error
 * semantics every credential plugin follows. Call it at the top level of a test file (or inside a `describe`).
 * Tests follow the declared capabilities: reads always (`secret.read`); `putSecret`, size and format limits with
 * `secret.write`; pending versions, `testVersion`, promotion, full rotation and rollback with `secret.rotate`;
 * revocation with `secret.revoke`; retried writes with `requestToken` with `secret.write.idempotent`; operations of
 * undeclared capabilities must fail with `WM_ERR_COMPATIBILITY`. Hooks of the target add the backend-specific codes
 * (`WM_ERR_SECRET_EXPIRED`, `WM_ERR_PERMISSION_DENIED`, `WM_ERR_NETWORK`).
 *
 * Every value the suite writes carries a random canary; every rejected call is checked for it in the error's message
 * and details (and the session's logs, when it gives them): no error ever shows a secret value.
 *
 * @example
 * runCredentialConformance({
 *   name: 'credentials-simple', capabilities: plugin.capabilities, maxValueBytes: 65536,
 *   setup: async () => { const h = await createPluginHarness(plugin, { config: { keyFile } });
 *     return { credentials: h.proxy, logs: () => h.logs, teardown: () => h.close() }; },
 * });
 */
export function runCredentialConformance(target: CredentialConformanceTarget): void {
  const factor = target.timeFactor === undefined ? readTimeFactor(process.env['WM_TEST_TIME_FACTOR'], 'WM_TEST_TIME_FACTOR') : readTimeFactor(target.timeFactor, 'timeFactor');
  const timeout = Math.round((target.testTimeoutMs ?? DEFAULT_TEST_TIMEOUT_MS) * factor);
  const has = (capability: string): boolean => target.capabilities[capability] !== undefined;
  const canWrite = has('secret.write');
  const canRotate = has('secret.rotate');
  const canRevoke = has('secret.revoke');
  const idempotent = has('secret.write.idempotent') && canWrite;
  const canMake = canWrite || target.seed !== undefined;
  const maps = target.keyValueMaps !== false;
  const run = randomBytes(3).toString('hex');
  const canaries = new Canaries();
  let session: CredentialConformanceSession | undefined;
  let seq = 0;

  const c = (): Credentials => {
    assert.ok(session !== undefined, 'conformance session did not start');
    return session.credentials;
  };
  const newName = (tag: string): string => `${target.namePrefix ?? 'cf-'}${run}-${tag}-${(seq++).toString(36)}`;
  const newToken = (): string => `cf_${randomBytes(12).toString('hex')}`;
  const aMap = (tag: string): SecretPayload => (maps ? { user: 'conformance', password: canaries.value(tag) } : canaries.value(tag));

  /** No remembered value in `text`; `where` names what was checked. */
  const expectNoValue = (text: string, where: string): void => {
    const found = canaries.foundIn(text);
    assert.equal(found, undefined, `${where} shows (part of) a secret value: ${JSON.stringify(found)}`);
  };

  /** The call fails with a WorkerManagerError of `code` that shows no secret value. */
  const expectCode = async (promise: Promise<unknown>, code: string, what: string): Promise<WorkerManagerError> => {
    let caught: unknown;
    await assert.rejects(promise, (error: unknown) => {
      caught = error;
      return true;
    }, `${what}: expected ${code}, but the call succeeded`);
    assert.ok(isWorkerManagerError(caught), `${what}: expected a WorkerManagerError, got ${String(caught)}`);
    assert.equal(caught.code, code, `${what}: expected ${code}, got ${caught.code}: ${caught.message}`);
    assert.ok(caught.message.length > 0, `${what}: the error has no message`);
    expectNoValue(errorText(caught), `${what}: the ${code} error`);
    return caught;
  };

  const read = (name: string, version?: string): Promise<SecretValue> => c().getSecret(version === undefined ? { name } : { name, version });
  /** getSecret of `version` (absent: the default) answers `want`. */
  const expectRead = async (name: string, version: string | undefined, want: Written, what: string): Promise<void> => {
    const got = await read(name, version);
    assert.equal(got.name, name, `${what}: getSecret answered another secret`);
    assert.equal(got.version, want.version, `${what}: getSecret(${version ?? 'no version'}) answered version ${got.version}, expected ${want.version}`);
    assert.deepEqual(got.value, want.value, `${what}: getSecret(${version ?? 'no version'}) answered another value`);
  };
  const list = (name: string): Promise<SecretVersion[]> => c().listVersions({ name });

  /** Makes secret `name` with `value` as its current version: putSecret, or the target's seed. */
  const make = async (name: string, value: SecretPayload): Promise<Written> => {
    if (canWrite) {
      const v = await c().putSecret({ name, value });
      return { version: v.version, value };
    }
    assert.ok(target.seed !== undefined && session !== undefined, 'the target must declare secret.write or give seed');
    const held = (await target.seed(session, name, value)) ?? value;
    canaries.remember(held);
    const got = await read(name);
    assert.deepEqual(got.value, held, 'getSecret right after seed answers the seeded value');
    return { version: got.version, value: held };
  };

  /** A secret with two versions, the second current: by putSecret, or by a rotation. */
  const twoVersions = async (tag: string): Promise<{ name: string; first: Written; second: Written }> => {
    const name = newName(tag);
    const first = await make(name, canaries.value(`${tag}-1`));
    const value = canaries.value(`${tag}-2`);
    if (canWrite) return { name, first, second: { version: (await c().putSecret({ name, value })).version, value } };
    assert.ok(canRotate, 'a second version needs secret.write or secret.rotate');
    const pending = await c().createPendingVersion({ name, value });
    await c().promoteVersion({ name, version: pending.version });
    return { name, first, second: { version: pending.version, value } };
  };

  /** A version of `name` that is revoked: by revokeVersion, or by a newer pending version superseding it. */
  const revokedVersion = async (name: string): Promise<string> => {
    const pending = await c().createPendingVersion({ name, value: canaries.value('revoked') });
    if (canRevoke) await c().revokeVersion({ name, version: pending.version });
    else await c().createPendingVersion({ name, value: canaries.value('superseding') });
    expectState(versionIn(await list(name), pending.version, 'revoked version'), 'revoked', [], 'a revoked version');
    return pending.version;
  };

  describe(`CredentialProvider conformance: ${target.name}`, { timeout: timeout * 40 }, () => {
    before(async () => {
      session = await target.setup();
    });
    after(async () => {
      await session?.teardown();
    });

    it('declares secret.read, and secret.write.idempotent only with secret.write', () => {
      assert.ok(has('secret.read'), 'every credential plugin must declare secret.read');
      assert.ok(!has('secret.write.idempotent') || canWrite, 'secret.write.idempotent is about putSecret: it needs secret.write');
    });

    it('every operation on an unknown secret fails with WM_ERR_SECRET_NOT_FOUND', { timeout }, async () => {
      const name = newName('unknown');
      await expectCode(read(name), 'WM_ERR_SECRET_NOT_FOUND', 'getSecret');
      await expectCode(read(name, 'current'), 'WM_ERR_SECRET_NOT_FOUND', 'getSecret of current');
      await expectCode(list(name), 'WM_ERR_SECRET_NOT_FOUND', 'listVersions');
      await expectCode(c().describe({ name }), 'WM_ERR_SECRET_NOT_FOUND', 'describe');
      if (canRotate) {
        await expectCode(c().createPendingVersion({ name, value: canaries.value('unknown') }), 'WM_ERR_SECRET_NOT_FOUND', 'createPendingVersion');
        await expectCode(c().testVersion({ name, version: 'pending' }), 'WM_ERR_SECRET_NOT_FOUND', 'testVersion');
        await expectCode(c().promoteVersion({ name, version: 'pending' }), 'WM_ERR_SECRET_NOT_FOUND', 'promoteVersion');
        await expectCode(read(name), 'WM_ERR_SECRET_NOT_FOUND', 'getSecret after createPendingVersion of an unknown name (it must not create the secret)');
      }
      if (canRevoke) await expectCode(c().revokeVersion({ name, version: 'previous' }), 'WM_ERR_SECRET_NOT_FOUND', 'revokeVersion');
    });

    const undeclared = Object.entries(CredentialProviderContract.operations).filter(([, op]) => !has(op.capability));
    if (undeclared.length > 0) {
      it(`refuses undeclared operations with WM_ERR_COMPATIBILITY (${undeclared.map(([n]) => n).join(', ')})`, { timeout }, async () => {
        const name = newName('compat');
        const sample: Record<string, unknown> = {
          putSecret: { name, value: canaries.value('compat') },
          createPendingVersion: { name, value: canaries.value('compat') },
          testVersion: { name, version: 'pending' },
          promoteVersion: { name, version: 'pending' },
          revokeVersion: { name, version: 'previous' },
          releaseLease: { name, version: 'compat' },
          encrypt: { key: 'cf-compat', plaintext: Buffer.from(canaries.value('compat')).toString('base64') },
          decrypt: { key: 'cf-compat', ciphertext: 'compat' },
          rotateKey: { key: 'cf-compat' },
          rewrap: { key: 'cf-compat', ciphertext: 'compat' },
        };
        for (const [op] of undeclared) {
          const fn = (c() as unknown as Record<string, (params: unknown) => Promise<unknown>>)[op];
          assert.ok(fn !== undefined && op in sample, `no sample params for ${op}`);
          await expectCode(fn(sample[op]), 'WM_ERR_COMPATIBILITY', op);
        }
      });
    }

    if (!canMake) {
      it('can make secrets to test (declares secret.write or gives seed)', () => {
        assert.fail('the plugin does not declare secret.write: give the target a seed hook, or the read, rotation and revocation tests cannot run');
      });
      return;
    }

    it('getSecret reads the current version when no version is given, by the stage name current, and by its version id', { timeout }, async () => {
      const name = newName('read');
      const v1 = await make(name, canaries.value('read'));
      await expectRead(name, undefined, v1, 'no version');
      await expectRead(name, 'current', v1, 'stage current');
      await expectRead(name, v1.version, v1, 'version id');
    });

    it('getSecret of an unknown version or stage fails with WM_ERR_SECRET_VERSION_NOT_FOUND, as do the version operations', { timeout }, async () => {
      const name = newName('nover');
      await make(name, canaries.value('nover'));
      await expectCode(read(name, 'pending'), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'getSecret of stage pending (none yet)');
      await expectCode(read(name, 'previous'), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'getSecret of stage previous (one version only)');
      for (const version of [randomUUID(), '999999']) {
        await expectCode(read(name, version), 'WM_ERR_SECRET_VERSION_NOT_FOUND', `getSecret of unknown version ${version}`);
        if (canRotate) {
          await expectCode(c().testVersion({ name, version }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', `testVersion of unknown version ${version}`);
          await expectCode(c().promoteVersion({ name, version }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', `promoteVersion of unknown version ${version}`);
        }
        if (canRevoke) await expectCode(c().revokeVersion({ name, version }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', `revokeVersion of unknown version ${version}`);
      }
    });

    it('listVersions gives metadata only, and describe gives currentVersion and the number of versions', { timeout }, async () => {
      const { name, second } = canWrite || canRotate ? await twoVersions('meta') : { name: newName('meta'), second: undefined };
      const current = second ?? (await make(name, canaries.value('meta')));
      const versions = await list(name);
      assert.ok(versions.length >= (second === undefined ? 1 : 2), `listVersions: ${shape(versions).join(' ')}`);
      for (const v of versions) {
        const extra = Object.keys(v).filter((k) => !VERSION_FIELDS.has(k));
        assert.deepEqual(extra, [], `listVersions: version ${v.version} has fields beyond metadata`);
        assert.ok(Number.isFinite(Date.parse(v.createdAt)), `listVersions: version ${v.version} createdAt '${v.createdAt}' is not a date`);
      }
      assert.equal(new Set(versions.map((v) => v.version)).size, versions.length, 'listVersions: version ids are unique');
      const currents = versions.filter((v) => v.stages.includes('current'));
      assert.deepEqual(currents.map((v) => v.version), [current.version], 'listVersions: exactly the current version has stage current');
      expectNoValue(JSON.stringify(versions), 'listVersions');
      const described = await c().describe({ name });
      assert.deepEqual(described, { name, currentVersion: current.version, versions: versions.length }, 'describe');
      expectNoValue(JSON.stringify(described), 'describe');
    });

    if (canWrite) {
      it('putSecret on a new name creates it with one version, active and current', { timeout }, async () => {
        const name = newName('put');
        const value = canaries.value('put');
        const v1 = await c().putSecret({ name, value });
        expectState(v1, 'active', ['current'], 'putSecret result');
        assert.ok(Number.isFinite(Date.parse(v1.createdAt)), `putSecret: createdAt '${v1.createdAt}' is not a date`);
        expectNoValue(JSON.stringify(v1), 'the putSecret result');
        const versions = await list(name);
        assert.deepEqual(shape(versions), shape([v1]), 'listVersions after the first putSecret');
        assert.deepEqual(await c().describe({ name }), { name, currentVersion: v1.version, versions: 1 });
        await expectRead(name, undefined, { version: v1.version, value }, 'first version');
        if (maps) {
          const mapName = newName('putmap');
          const map = aMap('putmap');
          const m1 = await c().putSecret({ name: mapName, value: map });
          await expectRead(mapName, undefined, { version: m1.version, value: map }, 'a key/value map');
        }
      });

      it('putSecret makes the new version current, the old current deprecated and previous, and the old previous unstaged; each reads by id and stage', { timeout }, async () => {
        const name = newName('put3');
        const w1 = await make(name, canaries.value('put3-1'));
        const value2 = aMap('put3-2');
        const v2 = await c().putSecret({ name, value: value2 });
        const w2 = { version: v2.version, value: value2 };
        const value3 = canaries.value('put3-3');
        const v3 = await c().putSecret({ name, value: value3 });
        const w3 = { version: v3.version, value: value3 };
        assert.equal(new Set([w1.version, w2.version, w3.version]).size, 3, 'every putSecret makes a new version id');
        expectState(v3, 'active', ['current'], 'putSecret result');
        const versions = await list(name);
        expectState(versionIn(versions, w3.version, 'third'), 'active', ['current'], 'the new version');
        expectState(versionIn(versions, w2.version, 'second'), 'deprecated', ['previous'], 'the old current');
        expectState(versionIn(versions, w1.version, 'first'), 'deprecated', [], 'the old previous');
        await expectRead(name, undefined, w3, 'current after three puts');
        await expectRead(name, 'current', w3, 'stage current after three puts');
        await expectRead(name, 'previous', w2, 'stage previous after three puts');
        await expectRead(name, w2.version, w2, 'the second version by id');
        await expectRead(name, w1.version, w1, 'the first version by id');
        assert.deepEqual(await c().describe({ name }), { name, currentVersion: w3.version, versions: versions.length });
      });

      it('putSecret of an empty value fails with WM_ERR_SECRET_INVALID_FORMAT and changes nothing', { timeout }, async () => {
        const fresh = newName('empty');
        await expectCode(c().putSecret({ name: fresh, value: '' }), 'WM_ERR_SECRET_INVALID_FORMAT', 'putSecret of an empty string');
        if (maps) await expectCode(c().putSecret({ name: fresh, value: {} }), 'WM_ERR_SECRET_INVALID_FORMAT', 'putSecret of an empty key/value map');
        await expectCode(read(fresh), 'WM_ERR_SECRET_NOT_FOUND', 'getSecret after a refused putSecret on a new name');
        const name = newName('empty2');
        const v1 = await make(name, canaries.value('empty2'));
        await expectCode(c().putSecret({ name, value: '' }), 'WM_ERR_SECRET_INVALID_FORMAT', 'putSecret of an empty string on an existing secret');
        await expectRead(name, undefined, v1, 'current after a refused putSecret');
        assert.equal((await list(name)).length, 1, 'a refused putSecret makes no version');
      });

      if (target.maxValueBytes !== undefined) {
        const max = target.maxValueBytes;
        it(`a value over the size limit (${max} bytes) fails with WM_ERR_SECRET_SIZE_LIMIT; a value at the limit is accepted`, { timeout }, async () => {
          const sized = (tag: string, bytes: number): string => {
            const head = canaries.value(tag);
            assert.ok(bytes >= head.length, `maxValueBytes ${max} is too small to test`);
            return head + 'x'.repeat(bytes - head.length);
          };
          const name = newName('size');
          const atLimit = sized('size', max);
          const v1 = await c().putSecret({ name, value: atLimit });
          await expectRead(name, undefined, { version: v1.version, value: atLimit }, 'a value of exactly maxValueBytes');
          await expectCode(c().putSecret({ name, value: sized('over', max + 1) }), 'WM_ERR_SECRET_SIZE_LIMIT', 'putSecret one byte over the limit');
          if (canRotate) await expectCode(c().createPendingVersion({ name, value: sized('over-pending', max + 1) }), 'WM_ERR_SECRET_SIZE_LIMIT', 'createPendingVersion one byte over the limit');
          await expectRead(name, undefined, { version: v1.version, value: atLimit }, 'current after refused oversized writes');
          assert.equal((await list(name)).length, 1, 'a refused write makes no version');
        });
      }
    }

    if (canRotate) {
      it('createPendingVersion makes a version with status and stage pending, generates a value when given none, and leaves current untouched', { timeout }, async () => {
        const name = newName('pending');
        const v1 = await make(name, canaries.value('pending-1'));
        const value = aMap('pending-2');
        const p = await c().createPendingVersion({ name, value });
        expectState(p, 'pending', ['pending'], 'createPendingVersion result');
        assert.notEqual(p.version, v1.version);
        expectNoValue(JSON.stringify(p), 'the createPendingVersion result');
        await expectRead(name, undefined, v1, 'current while a version is pending');
        await expectRead(name, 'pending', { version: p.version, value }, 'stage pending');
        await expectRead(name, p.version, { version: p.version, value }, 'the pending version by id');
        const versions = await list(name);
        expectState(versionIn(versions, v1.version, 'current'), 'active', ['current'], 'the current version while one is pending');
        assert.equal((await c().describe({ name })).currentVersion, v1.version, 'describe: a pending version is not current');

        const generated = await c().createPendingVersion({ name });
        expectState(generated, 'pending', ['pending'], 'createPendingVersion without a value');
        const got = await read(name, 'pending');
        canaries.remember(got.value);
        assert.equal(got.version, generated.version, 'stage pending moved to the newest pending version');
        assert.ok(typeof got.value === 'string' ? got.value.length > 0 : Object.keys(got.value).length > 0, 'a generated value is not empty');
        assert.notDeepEqual(got.value, value, 'a generated value is new');
        await expectRead(name, undefined, v1, 'current after createPendingVersion without a value');
      });

      it('a second createPendingVersion revokes the earlier un-promoted pending version', { timeout }, async () => {
        const name = newName('repending');
        const v1 = await make(name, canaries.value('repending-1'));
        const p1 = await c().createPendingVersion({ name, value: canaries.value('repending-2') });
        const value3 = canaries.value('repending-3');
        const p2 = await c().createPendingVersion({ name, value: value3 });
        const versions = await list(name);
        expectState(versionIn(versions, p1.version, 'first pending'), 'revoked', [], 'the superseded pending version');
        expectState(versionIn(versions, p2.version, 'second pending'), 'pending', ['pending'], 'the new pending version');
        expectState(versionIn(versions, v1.version, 'current'), 'active', ['current'], 'the current version');
        await expectCode(read(name, p1.version), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'getSecret of the superseded pending version');
        await expectRead(name, 'pending', { version: p2.version, value: value3 }, 'stage pending');
      });

      it('testVersion answers ok: true for a good pending version, by id and by stage', { timeout }, async () => {
        const name = newName('test');
        await make(name, canaries.value('test-1'));
        const p = await c().createPendingVersion({ name, value: canaries.value('test-2') });
        assert.deepEqual(await c().testVersion({ name, version: p.version }), { ok: true }, 'testVersion by id');
        assert.deepEqual(await c().testVersion({ name, version: 'pending' }), { ok: true }, 'testVersion by stage');
      });

      it('a version that fails its test answers ok: false with a reason (the host reports WM_ERR_ROTATION_FAILED), and current is untouched', { timeout }, async () => {
        const name = newName('failtest');
        const v1 = await make(name, canaries.value('failtest'));
        const failing = target.failingVersion !== undefined && session !== undefined ? await target.failingVersion(session, name) : await revokedVersion(name);
        const result = await c().testVersion({ name, version: failing });
        assert.equal(result.ok, false, `testVersion of a failing version ${failing} answered ok`);
        assert.ok(typeof result.reason === 'string' && result.reason.length > 0, 'a failed test gives its reason');
        expectNoValue(result.reason, 'the reason of a failed test');
        await expectRead(name, undefined, v1, 'current after a failed test');
        if (canRevoke) {
          // The host's rollback revokes the failed version: that must work whatever made it fail.
          const revoked = await c().revokeVersion({ name, version: failing });
          expectState(revoked, 'revoked', [], 'the failed version after revokeVersion');
          await expectRead(name, undefined, v1, 'current after the failed version is revoked');
        }
      });

      it('promoteVersion makes the target active and current, the old current deprecated and previous, the old previous unstaged, and is idempotent', { timeout }, async () => {
        const name = newName('promote');
        const v1 = await make(name, canaries.value('promote-1'));
        const value2 = canaries.value('promote-2');
        const p2 = await c().createPendingVersion({ name, value: value2 });
        await c().promoteVersion({ name, version: p2.version });
        const value3 = aMap('promote-3');
        const p3 = await c().createPendingVersion({ name, value: value3 });
        const promoted = await c().promoteVersion({ name, version: p3.version });
        expectState(promoted, 'active', ['current'], 'promoteVersion result');
        assert.equal(promoted.version, p3.version);
        const versions = await list(name);
        expectState(versionIn(versions, p3.version, 'promoted'), 'active', ['current'], 'the promoted version');
        expectState(versionIn(versions, p2.version, 'old current'), 'deprecated', ['previous'], 'the old current');
        expectState(versionIn(versions, v1.version, 'old previous'), 'deprecated', [], 'the old previous');
        assert.ok(!versions.some((v) => v.stages.includes('pending')), `no version keeps stage pending after its promotion: ${shape(versions).join(' ')}`);
        await expectRead(name, undefined, { version: p3.version, value: value3 }, 'current after promote');
        await expectRead(name, 'previous', { version: p2.version, value: value2 }, 'previous after promote');

        const again = await c().promoteVersion({ name, version: p3.version });
        assert.ok(same(again, promoted), `promoteVersion again answers the same version: ${shape([again]).join()} vs ${shape([promoted]).join()}`);
        assert.deepEqual(shape(await list(name)), shape(versions), 'promoteVersion again changes nothing');
      });

      it('a full rotation (create pending, test, promote, revoke the old version) switches current reads exactly at promote', { timeout }, async () => {
        const name = newName('rotate');
        const v1 = await make(name, canaries.value('rotate-1'));
        const p = await c().createPendingVersion({ name });
        const pendingValue = (await read(name, 'pending')).value;
        canaries.remember(pendingValue);
        await expectRead(name, undefined, v1, 'current after create');
        assert.deepEqual(await c().testVersion({ name, version: p.version }), { ok: true }, 'testVersion of the new version');
        await expectRead(name, undefined, v1, 'current after test');
        await c().promoteVersion({ name, version: p.version });
        const fresh = { version: p.version, value: pendingValue };
        await expectRead(name, undefined, fresh, 'current after promote');
        await expectRead(name, 'previous', v1, 'previous after promote');
        assert.equal((await c().describe({ name })).currentVersion, p.version, 'describe after promote');
        if (canRevoke) {
          const revoked = await c().revokeVersion({ name, version: v1.version });
          expectState(revoked, 'revoked', [], 'the old version after revokeVersion');
          await expectCode(read(name, v1.version), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'getSecret of the revoked old version');
          await expectCode(read(name, 'previous'), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'getSecret of stage previous once it is revoked');
          await expectRead(name, undefined, fresh, 'current after the old version is revoked');
        }
      });

      it('rollback: promoting the previous version makes it current again and the rolled-back version previous', { timeout }, async () => {
        const { name, first, second } = await twoVersions('rollback');
        const restored = await c().promoteVersion({ name, version: 'previous' });
        assert.equal(restored.version, first.version, 'promoteVersion of stage previous promotes the previous version');
        expectState(restored, 'active', ['current'], 'the restored version');
        const versions = await list(name);
        expectState(versionIn(versions, second.version, 'rolled back'), 'deprecated', ['previous'], 'the rolled-back version');
        await expectRead(name, undefined, first, 'current after rollback');
        await expectRead(name, 'previous', second, 'previous after rollback');
        assert.equal((await c().describe({ name })).currentVersion, first.version, 'describe after rollback');
      });

      it('promoteVersion of a revoked version fails with WM_ERR_CONFLICT and leaves current untouched', { timeout }, async () => {
        const name = newName('promrevoked');
        const v1 = await make(name, canaries.value('promrevoked'));
        const revoked = await revokedVersion(name);
        await expectCode(c().promoteVersion({ name, version: revoked }), 'WM_ERR_CONFLICT', 'promoteVersion of a revoked version');
        await expectRead(name, undefined, v1, 'current after a refused promote');
      });
    }

    if (canRevoke) {
      it('revokeVersion of the current version fails with WM_ERR_CONFLICT, by id and by stage, and the value stays readable', { timeout }, async () => {
        const name = newName('revcur');
        const v1 = await make(name, canaries.value('revcur'));
        await expectCode(c().revokeVersion({ name, version: v1.version }), 'WM_ERR_CONFLICT', 'revokeVersion of the current version by id');
        await expectCode(c().revokeVersion({ name, version: 'current' }), 'WM_ERR_CONFLICT', 'revokeVersion of stage current');
        await expectRead(name, undefined, v1, 'current after a refused revoke');
        expectState(versionIn(await list(name), v1.version, 'current'), 'active', ['current'], 'the current version after a refused revoke');
      });

      it('revokeVersion makes a version revoked with no stages, its value unreadable for good, and is idempotent', { timeout }, async () => {
        const { name, first, second } = await twoVersions('revoke');
        const revoked = await c().revokeVersion({ name, version: first.version });
        expectState(revoked, 'revoked', [], 'revokeVersion result');
        assert.equal(revoked.version, first.version);
        await expectCode(read(name, first.version), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'getSecret of a revoked version');
        await expectCode(read(name, 'previous'), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'getSecret of stage previous once its version is revoked');
        const again = await c().revokeVersion({ name, version: first.version });
        assert.ok(same(again, revoked), 'revokeVersion again answers the same revoked version');
        const versions = await list(name);
        expectState(versionIn(versions, first.version, 'revoked'), 'revoked', [], 'the revoked version in listVersions');
        expectState(versionIn(versions, second.version, 'current'), 'active', ['current'], 'the current version');
        await expectRead(name, undefined, second, 'current after revoking the previous version');
        if (canWrite) {
          // A later write must not bring the revoked value back as previous.
          await c().putSecret({ name, value: canaries.value('revoke-3') });
          await expectRead(name, 'previous', second, 'previous after a new version');
          await expectCode(read(name, first.version), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'getSecret of the revoked version after a new version');
        }
      });
    }

    if (idempotent) {
      it('putSecret retried with the same requestToken and value returns the same version and makes no other', { timeout }, async () => {
        const name = newName('idem');
        const value = aMap('idem-1');
        const token = newToken();
        const v1 = await c().putSecret({ name, value, requestToken: token });
        const retry = await c().putSecret({ name, value, requestToken: token });
        assert.equal(retry.version, v1.version, 'a retried putSecret answers the version the first call made');
        assert.equal((await list(name)).length, 1, 'a retried putSecret makes no version');
        // A new token is a new write, even with the same value.
        const value2 = canaries.value('idem-2');
        const v2 = await c().putSecret({ name, value: value2, requestToken: newToken() });
        assert.notEqual(v2.version, v1.version, 'a new token makes a new version');
        const late = await c().putSecret({ name, value, requestToken: token });
        assert.equal(late.version, v1.version, 'a late retry answers the version the first call made');
        await expectRead(name, undefined, { version: v2.version, value: value2 }, 'current after a late retry (a retry never moves current back)');
        assert.equal((await list(name)).length, 2, 'a late retry makes no version');
        // A token belongs to one secret: the same token on another secret is another write.
        const other = newName('idem-other');
        const o1 = await c().putSecret({ name: other, value, requestToken: token });
        await expectRead(other, undefined, { version: o1.version, value }, 'the same token on another secret');
      });

      it('putSecret with a used requestToken and a different value fails with WM_ERR_CONFLICT and changes nothing', { timeout }, async () => {
        const name = newName('idemconflict');
        const token = newToken();
        const value = canaries.value('idemconflict-1');
        const v1 = await c().putSecret({ name, value, requestToken: token });
        await expectCode(c().putSecret({ name, value: canaries.value('idemconflict-2'), requestToken: token }), 'WM_ERR_CONFLICT', 'putSecret with a used token and another value');
        await expectRead(name, undefined, { version: v1.version, value }, 'current after the conflict');
        assert.equal((await list(name)).length, 1, 'a conflicting retry makes no version');
      });

      if (canRotate) {
        it('createPendingVersion retried with the same requestToken returns the same pending version, its value generated once', { timeout }, async () => {
          const name = newName('idempending');
          const v1 = await make(name, canaries.value('idempending-1'));
          const token = newToken();
          const p = await c().createPendingVersion({ name, requestToken: token });
          const generated = await read(name, 'pending');
          canaries.remember(generated.value);
          const retry = await c().createPendingVersion({ name, requestToken: token });
          assert.equal(retry.version, p.version, 'a retried createPendingVersion answers the version the first call made');
          expectState(versionIn(await list(name), p.version, 'pending'), 'pending', ['pending'], 'the pending version after a retry (a retry does not supersede it)');
          await expectRead(name, 'pending', { version: p.version, value: generated.value }, 'the pending value after a retry');
          assert.equal((await list(name)).length, 2, 'a retried createPendingVersion makes no version');

          const withValue = newToken();
          const value = canaries.value('idempending-2');
          const p2 = await c().createPendingVersion({ name, value, requestToken: withValue });
          assert.equal((await c().createPendingVersion({ name, value, requestToken: withValue })).version, p2.version, 'a retry with the same value');
          await expectCode(c().createPendingVersion({ name, value: canaries.value('idempending-3'), requestToken: withValue }), 'WM_ERR_CONFLICT', 'createPendingVersion with a used token and another value');
          await expectRead(name, 'pending', { version: p2.version, value }, 'the pending version after the conflict');
          await expectRead(name, undefined, v1, 'current after retried pending versions');
        });
      }
    }

    if (target.expired !== undefined) {
      const expired = target.expired;
      it('getSecret of an expired secret fails with WM_ERR_SECRET_EXPIRED', { timeout }, async () => {
        assert.ok(session !== undefined);
        const ref = await expired(session);
        await expectCode(read(ref.name, ref.version), 'WM_ERR_SECRET_EXPIRED', `getSecret of expired ${ref.name}${ref.version === undefined ? '' : ` version ${ref.version}`}`);
      });
    }

    if (target.deniedSetup !== undefined) {
      const deniedSetup = target.deniedSetup;
      it('every operation fails with WM_ERR_PERMISSION_DENIED when the backend refuses the plugin, without the value in the error', { timeout }, async () => {
        const denied = await deniedSetup();
        try {
          const d = denied.credentials;
          const name = newName('denied');
          await expectCode(d.getSecret({ name }), 'WM_ERR_PERMISSION_DENIED', 'getSecret');
          await expectCode(d.listVersions({ name }), 'WM_ERR_PERMISSION_DENIED', 'listVersions');
          await expectCode(d.describe({ name }), 'WM_ERR_PERMISSION_DENIED', 'describe');
          if (canWrite) await expectCode(d.putSecret({ name, value: canaries.value('denied') }), 'WM_ERR_PERMISSION_DENIED', 'putSecret');
          if (canRotate) {
            await expectCode(d.createPendingVersion({ name, value: canaries.value('denied') }), 'WM_ERR_PERMISSION_DENIED', 'createPendingVersion');
            await expectCode(d.promoteVersion({ name, version: 'pending' }), 'WM_ERR_PERMISSION_DENIED', 'promoteVersion');
          }
          if (canRevoke) await expectCode(d.revokeVersion({ name, version: 'previous' }), 'WM_ERR_PERMISSION_DENIED', 'revokeVersion');
          if (denied.logs !== undefined) expectNoValue(JSON.stringify(denied.logs()), 'the logs of the denied session');
        } finally {
          await denied.teardown();
        }
      });
    }

    if (target.unreachableSetup !== undefined) {
      const unreachableSetup = target.unreachableSetup;
      it('an unreachable backend fails reads and writes with WM_ERR_NETWORK, transient', { timeout }, async () => {
        const down = await unreachableSetup();
        try {
          const name = newName('down');
          const error = await expectCode(down.credentials.getSecret({ name }), 'WM_ERR_NETWORK', 'getSecret');
          assert.equal(error.transient, true, 'WM_ERR_NETWORK is transient: the caller may retry');
          if (canWrite) await expectCode(down.credentials.putSecret({ name, value: canaries.value('down') }), 'WM_ERR_NETWORK', 'putSecret');
          if (down.logs !== undefined) expectNoValue(JSON.stringify(down.logs()), 'the logs of the unreachable session');
        } finally {
          await down.teardown();
        }
      });
    }

    it('no value the suite wrote appears in the plugin logs', { timeout }, (t) => {
      if (session?.logs === undefined) {
        t.skip('the session gives no logs');
        return;
      }
      expectNoValue(JSON.stringify(session.logs()), 'the plugin logs');
    });
  });
}
