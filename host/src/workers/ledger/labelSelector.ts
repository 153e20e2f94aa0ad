import { hostError } from '../../errors.ts';

/**
 * One requirement of a selector. The six written forms fold into four: `k=v` and `k==v` are `in [v]`, `k!=v` is
 * `notIn [v]`, so matching and the SQL translation each handle four cases. As in Kubernetes, `notIn` (and `!=`) also
 * match a worker that lacks the key.
 */
export type LabelRequirement =
  | { key: string; op: 'exists' }
  | { key: string; op: 'notExists' }
  | { key: string; op: 'in'; values: readonly string[] }
  | { key: string; op: 'notIn'; values: readonly string[] };

/** A parsed selector: all requirements must hold (comma means AND). No requirement matches everything. */
export interface LabelSelector {
  readonly requirements: readonly LabelRequirement[];
}

// Kubernetes label syntax: an optional DNS-subdomain prefix and '/', then a name of up to 63 characters that begins
// and ends with an alphanumeric; values follow the name rule and may be empty.
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DELIMITERS = new Set([',', '(', ')', '=', '!', ' ', '\t', '\n', '\r']);

/** Why `key` is not a valid label key, or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !prefix.split('.').every((p) => DNS_LABEL.test(p))) {
      return `key prefix '${prefix}' must be a lowercase DNS subdomain of at most 253 characters`;
    }
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    return `key name '${name}' must be 1-63 characters of letters, digits, '-', '_' or '.', beginning and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a valid label value, or undefined. */
export function labelValueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !NAME.test(value)) {
    return `value '${value}' must be at most 63 characters of letters, digits, '-', '_' or '.', beginning and ending with a letter or digit`;
  }
  return undefined;
}

/** A cursor over the selector text; every failure names the 1-based column it happened at. */
class Scanner {
  #pos = 0;
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
  }

  get column(): number {
    return this.#pos + 1;
  }

  get done(): boolean {
    this.skipSpace();
    return this.#pos >= this.#text.length;
  }

  peek(): string | undefined {
    this.skipSpace();
    return this.#text[this.#pos];
  }

  take(expected: string): boolean {
    if (this.peek() !== expected) return false;
    this.#pos += 1;
    return true;
  }

  /** The run of non-delimiter characters at the cursor, and the column it starts at. */
  word(): { text: string; column: number } {
    this.skipSpace();
    const start = this.#pos;
    while (this.#pos < this.#text.length && !DELIMITERS.has(this.#text[this.#pos] as string)) this.#pos += 1;
    return { text: this.#text.slice(start, this.#pos), column: start + 1 };
  }

  fail(problem: string, column = this.column): never {
    throw hostError('HOST_ERR_LABEL_SELECTOR_INVALID', `label selector '${this.#text}' is invalid at column ${column}: ${problem}`, {
      details: { selector: this.#text, column, problem },
    });
  }

  skipSpace(): void {
    while (this.#pos < this.#text.length && /\s/.test(this.#text[this.#pos] as string)) this.#pos += 1;
  }
}

function readKey(s: Scanner): string {
  const { text, column } = s.word();
  if (text === '') s.fail(`expected a label key, found ${describe(s.peek())}`, column);
  const problem = labelKeyProblem(text);
  if (problem !== undefined) s.fail(problem, column);
  return text;
}

function readValue(s: Scanner): string {
  const { text, column } = s.word();
  // An empty value is legal (`k=` selects k=""), but only where the value ends: `k=(v)` is a mistake, not `k=""`.
  const next = s.peek();
  if (text === '' && next !== undefined && next !== ',' && next !== ')') s.fail(`expected a value, found '${next}'`);
  const problem = labelValueProblem(text);
  if (problem !== undefined) s.fail(problem, column);
  return text;
}

function readValueSet(s: Scanner, operator: string): string[] {
  if (!s.take('(')) s.fail(`expected '(' after '${operator}', found ${describe(s.peek())}`);
  if (s.peek() === ')') s.fail(`the value set of '${operator}' must not be empty`);
  const values = [readValue(s)];
  while (s.take(',')) values.push(readValue(s));
  if (!s.take(')')) s.fail(`expected ',' or ')' in the value set of '${operator}', found ${describe(s.peek())}`);
  return values;
}

function readRequirement(s: Scanner): LabelRequirement {
  if (s.take('!')) return { key: readKey(s), op: 'notExists' };
  const key = readKey(s);
  const next = s.peek();
  if (next === undefined || next === ',') return { key, op: 'exists' };
  if (s.take('=')) {
    s.take('=');
    return { key, op: 'in', values: [readValue(s)] };
  }
  const column = s.column;
  if (s.take('!')) {
    if (!s.take('=')) s.fail(`expected '!=' after key '${key}'`, column);
    return { key, op: 'notIn', values: [readValue(s)] };
  }
  const word = s.word();
  if (word.text === 'in') return { key, op: 'in', values: readValueSet(s, 'in') };
  if (word.text === 'notin') return { key, op: 'notIn', values: readValueSet(s, 'notin') };
  return s.fail(`expected '=', '==', '!=', 'in', 'notin', ',' or the end after key '${key}', found ${describe(word.text || next)}`, word.column);
}

const describe = (token: string | undefined): string => (token === undefined ? 'the end' : `'${token}'`);

/**
 * Parses a Kubernetes-style selector: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by
 * commas. Throws HOST_ERR_LABEL_SELECTOR_INVALID naming the column and the problem; an empty string selects all.
 */
export function parseLabelSelector(text: string): LabelSelector {
  const s = new Scanner(text);
  const requirements: LabelRequirement[] = [];
  if (s.done) return { requirements };
  for (;;) {
    requirements.push(readRequirement(s));
    if (s.done) return { requirements };
    if (!s.take(',')) s.fail(`expected ',' or the end, found ${describe(s.peek())}`);
  }
}

/** Whether `labels` satisfy every requirement; the in-memory twin of the SQLite adapter's translation. */
export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return selector.requirements.every((r) => {
    const present = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'exists':
        return present;
      case 'notExists':
        return !present;
      case 'in':
        return present && r.values.includes(labels[r.key] as string);
      case 'notIn':
        return !(present && r.values.includes(labels[r.key] as string));
    }
  });
}
