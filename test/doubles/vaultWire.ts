import { randomUUID } from 'node:crypto';

/** What the Vault double answers to one request: a status and a JSON body (none for 204). */
export class HttpAnswer {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    this.status = status;
    this.body = body;
  }
}

/** Vault's error body: `{"errors":[...]}`. */
export const errors = (status: number, ...messages: string[]): HttpAnswer => new HttpAnswer(status, { errors: messages });

/** 403 `permission denied`: the token's policies do not grant the path. */
export const denied = (): HttpAnswer => errors(403, 'permission denied');

/** 204, no body: what Vault answers for a handler that returns nothing. */
export const noContent = (): HttpAnswer => new HttpAnswer(204, null);

/** Vault's success envelope; `extra` overrides its top-level fields (a dynamic secret's lease, warnings). */
export function envelope(mountType: string, data: unknown, extra: Record<string, unknown> = {}): HttpAnswer {
  return new HttpAnswer(200, { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data, wrap_info: null, warnings: null, auth: null, mount_type: mountType, ...extra });
}

/** A number of seconds Vault accepts as a duration: an integer, or a string of one (`"3600"`, `"1h"`, `"30m"`, `"45s"`). */
export function durationSeconds(raw: unknown): number | undefined {
  if (typeof raw === 'number' && Number.isFinite(raw)) return Math.trunc(raw);
  if (typeof raw !== 'string') return undefined;
  const m = /^(\d+)(s|m|h)?$/.exec(raw.trim());
  if (m === null) return undefined;
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}
