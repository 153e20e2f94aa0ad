/**
 * An independent AWS Signature Version 4 verifier for protocol doubles. It recomputes the signature from the raw
 * request (method, path, query, the headers the client listed in SignedHeaders, the SHA-256 of the body as received)
 * with the secret key the double knows for the access key id, so a client signing with a wrong key, or a body changed
 * after signing, is refused as AWS refuses it. Written from the SigV4 specification, not with the SDK's signer: a
 * shared bug would otherwise cancel out.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header. */
export interface SigV4Authorization {
  accessKeyId: string;
  /** `YYYYMMDD` of the credential scope. */
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;_-]+),\s*Signature=([0-9a-f]{64})$/;

/** Parses the header; `undefined` when it is not a well-formed SigV4 header (AWS: IncompleteSignatureException). */
export function parseAuthorization(header: string | undefined): SigV4Authorization | undefined {
  if (header === undefined) return undefined;
  const m = AUTH.exec(header.trim());
  if (m === null) return undefined;
  const [, accessKeyId, date, region, service, signed, signature] = m as unknown as [string, string, string, string, string, string, string];
  return { accessKeyId, date, region, service, signedHeaders: signed.split(';'), signature };
}

/** RFC 3986 percent-encoding, as SigV4 wants it (unreserved characters kept, everything else `%XX` upper case). */
function rfc3986(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalUri(rawPath: string): string {
  // Services other than S3 encode each segment of the (already encoded) path once more.
  return rawPath
    .split('/')
    .map((segment) => rfc3986(segment))
    .join('/');
}

function canonicalQuery(rawQuery: string): string {
  const pairs: Array<[string, string]> = [];
  for (const [k, v] of new URLSearchParams(rawQuery)) pairs.push([rfc3986(k), rfc3986(v)]);
  pairs.sort(([ak, av], [bk, bv]) => (ak === bk ? (av < bv ? -1 : av > bv ? 1 : 0) : ak < bk ? -1 : 1));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function canonicalHeaderValue(values: string[]): string {
  return values.map((v) => v.trim().replace(/\s+/g, ' ')).join(',');
}

/** The canonical request of `req` over `signedHeaders`, with the body's own hash. */
export function canonicalRequest(req: IncomingMessage, signedHeaders: readonly string[], body: Buffer): string {
  const url = new URL(req.url ?? '/', 'http://double.invalid');
  const distinct = req.headersDistinct;
  const headers = signedHeaders.map((name) => `${name}:${canonicalHeaderValue(distinct[name] ?? [])}\n`).join('');
  return [req.method ?? 'POST', canonicalUri(url.pathname), canonicalQuery(url.search.slice(1)), headers, signedHeaders.join(';'), sha256Hex(body)].join('\n');
}

/** Hex SHA-256. */
export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** The signature a client holding `secretAccessKey` must have sent for this canonical request. */
export function expectedSignature(secretAccessKey: string, amzDate: string, auth: Pick<SigV4Authorization, 'date' | 'region' | 'service'>, canonical: string): string {
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  const kDate = hmac(`AWS4${secretAccessKey}`, auth.date);
  const kRegion = hmac(kDate, auth.region);
  const kService = hmac(kRegion, auth.service);
  const kSigning = hmac(kService, 'aws4_request');
  return createHmac('sha256', kSigning).update(stringToSign, 'utf8').digest('hex');
}

/** Constant-time comparison of two hex signatures. */
export function signaturesMatch(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Parses `x-amz-date` (`YYYYMMDDTHHMMSSZ`) to epoch ms; `undefined` when malformed. */
export function parseAmzDate(value: string | undefined): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h, mi, s);
}

/** `YYYYMMDDTHHMMSSZ` of an epoch ms, the form AWS quotes in "Signature expired" messages. */
export function formatAmzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}
