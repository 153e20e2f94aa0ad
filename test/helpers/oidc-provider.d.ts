// oidc-provider ships no type declarations; this covers what test/helpers/testIdentityProvider.ts uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface ProviderToken {
    clientId?: string;
    kind: string;
  }
  /** The Koa context a `use` middleware sees (the fields the test doubles touch). */
  export interface ProviderContext {
    path: string;
    status: number;
    body: unknown;
    oidc?: { client?: { clientId?: string } };
  }
  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: string, listener: (...args: unknown[]) => void): this;
    use(middleware: (ctx: ProviderContext, next: () => Promise<void>) => Promise<void>): this;
    /** The client model; its prototype's `compareClientSecret` checks a presented secret (`this` is the client). */
    readonly Client: { prototype: { compareClientSecret(this: { clientId: string }, actual: string): boolean | Promise<boolean> } };
  }
}
