import os from 'node:os';

/** The id a host uses when the config names none: the hostname, made label-safe. */
export function defaultHostId(): string {
  const cleaned = os.hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^[^a-z]+/, '').slice(0, 63);
  return cleaned.length > 0 ? cleaned : 'host';
}
