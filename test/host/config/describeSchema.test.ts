import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import Type from 'typebox';
import { describeSchema, describeSchemaType, renderConfigReference, spliceConfigReference } from '../../../host/src/config/describeSchema.ts';
import { HostConfig } from '../../../host/src/config/schema.ts';

const docUrl = new URL('../../../docs/configuration.md', import.meta.url);

/** Every property path of a schema, walked independently of describeSchema so that the two check each other. */
function propertyPaths(schema: unknown, prefix = ''): string[] {
  const s = schema as { type?: string; properties?: Record<string, unknown>; items?: unknown };
  if (s.type === 'array') return propertyPaths(s.items, `${prefix}[]`);
  if (s.type !== 'object' || s.properties === undefined) return [];
  return Object.entries(s.properties).flatMap(([name, sub]) => {
    const path = prefix === '' ? name : `${prefix}.${name}`;
    return [path, ...propertyPaths(sub, path)];
  });
}

describe('docs/configuration.md', () => {
  it('holds the reference generated from schema.ts (run `npx tsx host/src/config/describeSchema.ts` to update it)', async () => {
    const doc = await readFile(docUrl, 'utf8');
    assert.equal(spliceConfigReference(doc), doc, 'docs/configuration.md is behind host/src/config/schema.ts');
  });

  it('names every property path of the schema', async () => {
    const doc = await readFile(docUrl, 'utf8');
    const paths = propertyPaths(HostConfig);
    assert.ok(paths.length >= 30, `only ${paths.length} paths found`);
    for (const path of paths) assert.ok(doc.includes(`| \`${path}\` |`), `docs/configuration.md does not document ${path}`);
  });

  it('has a description for every field of the schema', () => {
    for (const object of describeSchema(HostConfig)) {
      for (const field of object.fields) assert.notEqual(field.description, '', `${field.path} has no description in schema.ts`);
    }
  });

  it('documents the environment interpolation rules and path resolution', async () => {
    const doc = await readFile(docUrl, 'utf8');
    for (const needle of ['${NAME}', '${NAME:-default}', '$${', 'HOST_ERR_CONFIG_ENV_MISSING', 'folder of the config file']) {
      assert.ok(doc.includes(needle), needle);
    }
  });
});

describe('describeSchema', () => {
  it('renders types, defaults and required fields', () => {
    const S = Type.Object({
      a: Type.Integer({ minimum: 1, maximum: 9, default: 3, description: 'A.' }),
      b: Type.Union([Type.Literal('x'), Type.Literal('y')], { description: 'B.' }),
      c: Type.Optional(Type.Array(Type.Object({ d: Type.Boolean({ description: 'D.' }) }), { description: 'C.' })),
    });
    assert.deepEqual(describeSchema(S), [
      {
        path: '',
        description: '',
        fields: [
          { path: 'a', type: 'integer 1 to 9', default: '3', description: 'A.' },
          { path: 'b', type: '"x" | "y"', default: 'required', description: 'B.' },
          { path: 'c', type: 'list of object', default: 'none', description: 'C.' },
        ],
      },
      { path: 'c[]', description: '', fields: [{ path: 'c[].d', type: 'boolean', default: 'required', description: 'D.' }] },
    ]);
    assert.equal(describeSchemaType(Type.Record(Type.String(), Type.Unknown())), 'map of any');
    assert.ok(renderConfigReference(S).includes('| `b` | "x" \\| "y" | required | B. |'));
  });

  it('refuses to splice a document that lost its markers', () => {
    assert.throws(() => spliceConfigReference('# no markers'), /markers/);
  });
});
