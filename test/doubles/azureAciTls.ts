import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM. */
export interface SelfSignedCert {
  cert: string;
  key: string;
}

/**
 * Makes a throw-away certificate with the system's openssl. The Azure double must speak HTTPS: @azure/identity refuses
 * an `authorityHost` that is not https, and the Azure SDK's bearer-token policy refuses to send a token over plain HTTP.
 * Clients trust it through their `ca` (an agent's or the plugin's `caCertFile`), never by turning verification off.
 */
export function selfSignedCert(): SelfSignedCert {
  const dir = mkdtempSync(path.join(tmpdir(), 'aci-double-tls-'));
  try {
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
