import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';

const compiled = new WeakMap<TSchema, ReturnType<typeof Compile>>();

/**
 * The compiled check of a schema, compiled on first use: a CLI run needs two or three of them, and compiling every
 * schema a module might use at import time would slow every command down.
 */
export function checkerFor<S extends TSchema>(schema: S): ReturnType<typeof Compile<S>> {
  let check = compiled.get(schema);
  if (check === undefined) {
    check = Compile(schema);
    compiled.set(schema, check);
  }
  return check as ReturnType<typeof Compile<S>>;
}
