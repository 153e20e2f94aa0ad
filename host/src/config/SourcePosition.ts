/** Where something is in a config file; line and col are 1-based. `file` is absolute. */
export interface SourcePosition {
  file: string;
  line: number;
  col: number;
}

/** Maps a JSON pointer to the position of the deepest node on that path that exists in the source. */
export type Locate = (pointer: string) => SourcePosition | undefined;

/** RFC 6901 escaping of one pointer segment. */
export function escapePointerSegment(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** RFC 6901 unescaping of one pointer segment. */
export function unescapePointerSegment(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~');
}

/** Splits a JSON pointer ('' is the root) into unescaped segments; undefined when it is not a pointer. */
export function pointerSegments(pointer: string): string[] | undefined {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) return undefined;
  return pointer.slice(1).split('/').map(unescapePointerSegment);
}

/** Joins a base pointer and one unescaped segment. */
export function childPointer(base: string, segment: string | number): string {
  return `${base}/${escapePointerSegment(String(segment))}`;
}
