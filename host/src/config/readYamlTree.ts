import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { ConfigIssue } from './formatIssues.ts';
import { childPointer, type Locate, type SourcePosition } from './SourcePosition.ts';

/** A string scalar of the tree, with a way to replace its value (interpolation happens after parsing). */
export interface StringScalar {
  pointer: string;
  /** Where the scalar itself starts (not its key). */
  position: SourcePosition;
  text: string;
  /** The YAML node: one node reached through several aliases is interpolated per path but reported once. */
  node: object;
  set(value: unknown): void;
}

/** A config file as plain JSON data plus the source position of every node. */
export interface YamlTree {
  value: unknown;
  locate: Locate;
  strings: StringScalar[];
  /** YAML syntax errors and YAML the config does not accept (unknown tags, complex keys, recursive aliases). */
  issues: ConfigIssue[];
}

/** Caps alias expansion, so a "billion laughs" file fails fast instead of eating memory. */
export const MAX_YAML_NODES = 100_000;

const PLAIN_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

class TooManyNodes extends Error {}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, not assignment: a `__proto__` key must stay data and never change the prototype.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Parses YAML 1.2 text into plain data, keeping the source position of every node. Positions are of the key for map
 * entries (that is where a human looks for `maxWorkers: 0`), of the item for sequence entries.
 */
export function readYamlTree(text: string, file: string): YamlTree {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, version: '1.2', merge: false });
  const at = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line: Math.max(line, 1), col: Math.max(col, 1) };
  };
  const nodePosition = (node: Node | null | undefined): SourcePosition | undefined =>
    node?.range ? at(node.range[0]) : undefined;

  const issues: ConfigIssue[] = [...doc.errors, ...doc.warnings].map((e) => ({ path: '', message: e.message, position: at(e.pos[0]) }));
  const positions = new Map<string, SourcePosition>();
  const strings: StringScalar[] = [];
  const rootPosition = nodePosition(doc.contents) ?? { file, line: 1, col: 1 };
  positions.set('', rootPosition);
  const locate: Locate = (pointer) => {
    if (pointer !== '' && !pointer.startsWith('/')) return undefined;
    for (let p = pointer; ; p = p.slice(0, p.lastIndexOf('/'))) {
      const position = positions.get(p);
      if (position !== undefined) return position;
      if (p === '') return rootPosition;
    }
  };
  if (issues.length > 0) return { value: undefined, locate, strings, issues };

  let count = 0;
  const onStack = new Set<Node>();
  const problem = (node: Node, pointer: string, message: string): null => {
    issues.push({ path: pointer, message, position: nodePosition(node) ?? locate(pointer) ?? rootPosition });
    return null;
  };

  const build = (node: Node | null | undefined, pointer: string, holder: { set(value: unknown): void }): unknown => {
    if (++count > MAX_YAML_NODES) throw new TooManyNodes();
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      const target = node.resolve(doc as Document) as Node | undefined;
      if (target === undefined) return problem(node, pointer, `alias *${node.source} has no anchor`);
      if (onStack.has(target)) return problem(node, pointer, `alias *${node.source} refers to a node that contains it`);
      return build(target, pointer, holder);
    }
    if (node.tag !== undefined && !PLAIN_TAGS.has(node.tag)) return problem(node, pointer, `unsupported YAML tag ${node.tag}`);
    if (isScalar(node)) {
      const value = node.value;
      if (typeof value === 'string') {
        strings.push({ pointer, position: nodePosition(node) ?? rootPosition, text: value, node, set: holder.set });
        return value;
      }
      if (value === null || typeof value === 'number' || typeof value === 'boolean') return value;
      return problem(node, pointer, `unsupported YAML value of type ${typeof value}`);
    }
    onStack.add(node);
    try {
      if (isMap(node)) {
        const result: Record<string, unknown> = {};
        for (const pair of node.items) {
          const key = pair.key as Node | null;
          if (!isScalar(key) || key.value === null || typeof key.value === 'object') {
            problem(key ?? node, pointer, 'mapping keys must be plain strings');
            continue;
          }
          const name = String(key.value);
          const entry = childPointer(pointer, name);
          if (Object.hasOwn(result, name)) {
            problem(key, entry, `duplicate key '${name}'`);
            continue;
          }
          positions.set(entry, nodePosition(key) ?? nodePosition(pair.value as Node | null) ?? rootPosition);
          setOwn(result, name, build(pair.value as Node | null, entry, { set: (v) => setOwn(result, name, v) }));
        }
        return result;
      }
      if (isSeq(node)) {
        const result: unknown[] = [];
        node.items.forEach((item, index) => {
          const entry = childPointer(pointer, index);
          positions.set(entry, nodePosition(item as Node | null) ?? locate(pointer) ?? rootPosition);
          result.push(build(item as Node | null, entry, { set: (v) => (result[index] = v) }));
        });
        return result;
      }
    } finally {
      onStack.delete(node);
    }
    return problem(node, pointer, 'unsupported YAML node');
  };

  let value: unknown = null;
  try {
    value = build(doc.contents as Node | null, '', { set: (v) => (value = v) });
  } catch (error) {
    if (!(error instanceof TooManyNodes)) throw error;
    issues.push({ path: '', message: `too many nodes after expanding aliases (more than ${MAX_YAML_NODES})`, position: rootPosition });
  }
  return { value, locate, strings, issues };
}
