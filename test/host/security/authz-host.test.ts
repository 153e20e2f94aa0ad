// The authorizer and the audit log as the host wires them: started before plugins, deciding API requests, recording
// every decision in the hash-chained log and on the bus.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { auditLogPath } from '../../../host/src/security/audit/AuditLog.ts';
import type { AuditRecord } from '../../../host/src/security/audit/auditRecord.ts';
import { verifyAuditLog } from '../../../host/src/security/audit/verifyAuditLog.ts';
import { adminAuthorization } from '../../helpers/adminToken.ts';
import { processProviderYaml, repoRoot, startTestHost } from '../../helpers/startTestHost.ts';
import { waitFor } from '../../helpers/waitFor.ts';

const processPlugin = processProviderYaml();

describe('Host authorization and audit', () => {
  it('refuses to start, before any plugin runs, when a policy does not validate', async () => {
    const error = await startTestHost(`host: { id: h-badpolicy, stateDir: \${DIR}/state }
security:
  authorization:
    cedar: { policiesDir: ${repoRoot}test/fixtures/does-not-exist }
${processPlugin}`).then(() => undefined, (e: unknown) => e);
    assert.ok(isWorkerManagerError(error));
    assert.equal(error.code, 'HOST_ERR_AUTHZ_POLICY_INVALID');
    assert.match(error.message, /cannot read the policy folder .*does-not-exist/);
  });

  it('names the invalid policy when the folder has one', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-host-policies-'));
    try {
      await copyFile(path.join(repoRoot, 'config/policies/schema.cedarschema'), path.join(dir, 'schema.cedarschema'));
      await writeFile(path.join(dir, 'bad.cedar'), '@id("owner-check")\npermit (principal, action, resource is WorkerManager::Worker) when { resource.owner == principal.subject };\n');
      const error = await startTestHost(`host: { id: h-badpolicy2, stateDir: \${DIR}/state }\nsecurity: { authorization: { cedar: { policiesDir: ${dir} } } }\n${processPlugin}`).then(() => undefined, (e: unknown) => e);
      assert.ok(isWorkerManagerError(error));
      assert.equal(error.code, 'HOST_ERR_AUTHZ_POLICY_INVALID');
      assert.match(error.message, /policy "owner-check" in .*bad\.cedar does not validate against the schema: .*optional attribute `owner`/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('decides API requests with the shipped Cedar policies and audits each decision, chained and published', async () => {
    const t = await startTestHost(`host: { id: h-audit, stateDir: \${DIR}/state }\napi: { enabled: true, port: 0 }\n${processPlugin}`);
    try {
      assert.equal(t.host.authorizer.adapter, 'cedar');
      const base = t.host.apiUrl ?? assert.fail('no api');
      const headers = await adminAuthorization(t.host);
      const listed = await fetch(`${base}/v1/workers`, { headers });
      assert.equal(listed.status, 200, await listed.clone().text());
      const plugins = await fetch(`${base}/v1/plugins`, { headers });
      assert.equal(plugins.status, 200);
      const file = auditLogPath(path.join(t.dir, 'state'));
      const verified = await verifyAuditLog(file);
      assert.equal(verified.ok, true);
      const records = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
      const decisions = records.filter((r) => r.kind === 'authz.decision');
      assert.deepEqual(decisions.map((r) => [r.action, r.decision, r.principal.id]), [['worker:read', 'allow', 'local-admin'], ['plugin:read', 'allow', 'local-admin']]);
      assert.ok(decisions[0]?.policies?.includes('local-admin'));
      const token = headers.authorization.slice('Bearer '.length);
      assert.ok(!(await readFile(file, 'utf8')).includes(token), 'the token is never in the audit log');
      await waitFor(() => t.events.filter((e) => e.busSubject === 'ci.security.auth.granted').length >= 2, 'the two grants on the bus');
      const granted = t.events.filter((e) => e.busSubject === 'ci.security.auth.granted');
      assert.deepEqual(granted.map((e) => (e.data as { auditSeq: number }).auditSeq), decisions.map((r) => r.seq));
    } finally {
      await t.stop();
    }
  });
});
