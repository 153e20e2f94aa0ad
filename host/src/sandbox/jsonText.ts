/** Why a thread's JSON text was refused. */
export type TextRefusal = 'too-large' | 'too-deep' | 'malformed';

/** A message read from JSON text, or why it was refused. */
export type ReadText = { ok: true; value: unknown } | { ok: false; reason: TextRefusal };

/**
 * Reads JSON text a plugin thread sent, checking its size and depth before parsing: a message over either limit is
 * refused at the cost of a length check, or of one scan that stops at the first level too deep, never parsed whole.
 * Anything but a string (a structured clone a thread should not send) is malformed.
 */
export function readJsonText(raw: unknown, maxLength: number, maxDepth: number): ReadText {
  if (typeof raw !== 'string') return { ok: false, reason: 'malformed' };
  if (raw.length > maxLength) return { ok: false, reason: 'too-large' };
  // JSON.parse itself has no depth limit and takes seconds on a few MB of nested brackets.
  if (exceedsDepth(raw, maxDepth)) return { ok: false, reason: 'too-deep' };
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch {
    return { ok: false, reason: 'malformed' };
  }
}

/** Whether JSON text nests objects and arrays deeper than `max`; string contents are skipped, not scanned per char. */
export function exceedsDepth(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      let end = i + 1;
      for (;;) {
        end = text.indexOf('"', end);
        // An unterminated string is malformed; JSON.parse will say so.
        if (end === -1) return false;
        let backslashes = 0;
        while (text.charCodeAt(end - 1 - backslashes) === 92 /* \ */) backslashes++;
        if (backslashes % 2 === 0) break;
        end++;
      }
      i = end;
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) return true;
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      depth--;
    }
  }
  return false;
}
