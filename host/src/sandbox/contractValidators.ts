import type { Contract, Operation } from '@worker-manager/plugin-sdk';
import { Compile } from 'typebox/compile';

/** A compiled check: the fast `Check` on the hot path, `Errors` only once a value has failed. */
export interface CompiledCheck {
  Check(value: unknown): boolean;
  Errors(value: unknown): Iterable<{ instancePath: string; message: string }>;
}

/** The compiled validators of one contract operation. */
export interface OperationValidators {
  readonly name: string;
  readonly kind: Operation['kind'];
  readonly params: CompiledCheck;
  /** The result schema of a call operation, or the item schema of a stream operation. */
  readonly output: CompiledCheck;
}

// Compiling a typebox schema generates code; doing it per call would cost more than the call itself.
const cache = new WeakMap<Contract, ReadonlyMap<string, OperationValidators>>();

/** The compiled validators of every operation of a contract; compiled once per contract object and cached. */
export function contractValidators(contract: Contract): ReadonlyMap<string, OperationValidators> {
  let compiled = cache.get(contract);
  if (compiled === undefined) {
    const out = new Map<string, OperationValidators>();
    for (const [name, op] of Object.entries(contract.operations)) {
      out.set(name, {
        name,
        kind: op.kind,
        params: Compile(op.params),
        output: Compile(op.kind === 'call' ? op.result : op.item),
      });
    }
    compiled = out;
    cache.set(contract, compiled);
  }
  return compiled;
}

/** One schema violation, safe to put in error details (paths and rule messages, never the offending value). */
export interface SchemaIssue {
  instancePath: string;
  message: string;
}

/** The first few violations of a value that failed `check`. */
export function schemaIssues(check: CompiledCheck, value: unknown, max = 5): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  for (const error of check.Errors(value)) {
    out.push({ instancePath: error.instancePath, message: error.message });
    if (out.length >= max) break;
  }
  return out;
}
