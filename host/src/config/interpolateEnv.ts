/** The result of interpolating one string. Holds variable names, never their values, apart from `value` itself. */
export interface InterpolatedString {
  value: string;
  /** True when the text had any `${...}` or `$${` in it. */
  changed: boolean;
  /** True when the text is exactly one `${...}` reference: such a value may become a number or boolean. */
  whole: boolean;
  /** Every variable referenced (valid references only). */
  names: string[];
  /** Variables that are unset and have no default. */
  missing: string[];
  /** Malformed references, described without any environment value. */
  invalid: string[];
}

const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([^]*))?$/;

function shorten(text: string): string {
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/**
 * Expands `${NAME}` and `${NAME:-default}` in a string. `:-` uses the default when the variable is unset or empty
 * (as in POSIX shells); the default is literal text and cannot contain `}`. `$${` gives a literal `${`. A `$` not
 * followed by `{` is kept as is.
 */
export function interpolateString(text: string, env: NodeJS.ProcessEnv): InterpolatedString {
  const result: InterpolatedString = { value: '', changed: false, whole: false, names: [], missing: [], invalid: [] };
  let references = 0;
  let literalText = false;
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar === -1) {
      result.value += text.slice(i);
      literalText = true;
      break;
    }
    if (dollar > i) literalText = true;
    result.value += text.slice(i, dollar);
    if (text.startsWith('$${', dollar)) {
      result.value += '${';
      result.changed = true;
      literalText = true;
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== '{') {
      result.value += '$';
      literalText = true;
      i = dollar + 1;
      continue;
    }
    result.changed = true;
    const close = text.indexOf('}', dollar + 2);
    if (close === -1) {
      result.invalid.push(`unterminated reference '${shorten(text.slice(dollar))}': close it with '}', or write '$\${' for a literal '\${'`);
      break;
    }
    const body = text.slice(dollar + 2, close);
    const match = REFERENCE.exec(body);
    i = close + 1;
    references += 1;
    if (match === null) {
      result.invalid.push(`invalid reference '\${${shorten(body)}}': write \${NAME} or \${NAME:-default}, NAME being letters, digits and _`);
      continue;
    }
    const name = match[1] as string;
    const fallback = match[2];
    if (!result.names.includes(name)) result.names.push(name);
    const set = env[name];
    if (fallback !== undefined && (set === undefined || set === '')) result.value += fallback;
    else if (set !== undefined) result.value += set;
    else if (!result.missing.includes(name)) result.missing.push(name);
  }
  result.whole = references === 1 && !literalText;
  return result;
}
