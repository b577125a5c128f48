import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

// The gateway's own small PKI: a CA that devices pin and a server certificate for the broker.
// OpenSSL's command line does the X.509 work: it is on every edge server we target, and node:crypto
// can verify certificates but not issue them.

export interface PkiFiles {
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

export function pkiFiles(dir: string): PkiFiles {
  return {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
  };
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT')
      throw new Error('openssl is not installed: install it (apt-get install openssl) and retry');
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString().trim() ?? err.message}`);
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** The SANs a server certificate gets: what the operator named, plus the loopback names. */
export function serverNames(hosts: readonly string[]): string[] {
  return [...new Set([...hosts, 'localhost', '127.0.0.1', '::1'])];
}

/** Creates the CA (unless it exists: devices already pin it) and a fresh server certificate. */
export function createPki(dir: string, hosts: readonly string[], subject = 'Vigil gateway'): PkiFiles {
  mkdirSync(dir, { recursive: true });
  const f = pkiFiles(dir);
  if (!existsSync(f.caCert) || !existsSync(f.caKey)) {
    openssl([
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      f.caKey,
      '-out',
      f.caCert,
      '-days',
      '3650',
      '-subj',
      `/CN=${subject} CA`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
  }
  const names = serverNames(hosts).map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`));
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  writeFileSync(
    ext,
    `subjectAltName=${names.join(',')}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`,
  );
  openssl([
    'req',
    '-new',
    ...EC_KEY,
    '-keyout',
    f.serverKey,
    '-out',
    csr,
    '-subj',
    `/CN=${serverNames(hosts)[0]}`,
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    f.caCert,
    '-CAkey',
    f.caKey,
    '-CAcreateserial',
    '-days',
    '825',
    '-extfile',
    ext,
    '-out',
    f.serverCert,
  ]);
  for (const scratch of [csr, ext, join(dir, 'ca.srl')]) rmSync(scratch, { force: true });
  chmodSync(f.caKey, 0o600);
  chmodSync(f.serverKey, 0o600);
  return f;
}

export interface TlsMaterial {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export function loadTlsMaterial(f: PkiFiles): TlsMaterial {
  return { ca: readFileSync(f.caCert), cert: readFileSync(f.serverCert), key: readFileSync(f.serverKey) };
}
