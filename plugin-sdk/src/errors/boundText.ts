/**
 * Most bytes of text that came from outside (a caller's value, an infrastructure's message that may quote one) an
 * error message or a log field carries. Every failed call writes its message to the host log and to the answer: a
 * message quoting a 32,000-character argument grew the log by that much per request.
 */
export const MAX_QUOTED_BYTES = 512;

/**
 * `text` as an error message or a log line may carry it: unchanged when it fits in `maxBytes` of UTF-8, otherwise
 * its beginning and its end (three quarters and a quarter of `maxBytes`, never half a character) around a marker
 * with the original size, e.g. `exec: "ccc…[truncated: 32163 bytes in all]…cc": executable file not found`. The end
 * is kept because messages that quote a value often say what was wrong with it after it. Remove secret values before
 * bounding: a cut could leave part of one.
 */
export function boundText(text: string, maxBytes: number = MAX_QUOTED_BYTES): string {
  // A UTF-16 unit takes at most 3 bytes of UTF-8: text this short fits without counting.
  if (text.length <= maxBytes / 3) return text;
  const bytes = Buffer.byteLength(text);
  if (bytes <= maxBytes) return text;
  const headBytes = Math.ceil((maxBytes * 3) / 4);
  const tailBytes = maxBytes - headBytes;
  // n units hold at least n bytes, so these slices hold what is kept; a cut inside a character leaves a replacement
  // character, which goes.
  const head = Buffer.from(text.slice(0, headBytes)).subarray(0, headBytes).toString('utf8').replace(/\uFFFD+$/, '');
  const end = tailBytes === 0 ? Buffer.alloc(0) : Buffer.from(text.slice(-tailBytes));
  const tail = end.subarray(end.length - tailBytes).toString('utf8').replace(/^\uFFFD+/, '');
  return `${head}…[truncated: ${bytes} bytes in all]…${tail}`;
}
