/**
 * Certificates for TLS tests, made with the openssl command in a directory:
 * a CA, a server certificate it signed for the host name `localhost` only
 * (so 127.0.0.1 is a host-name mismatch), and a second, unrelated CA (one a
 * client must not trust for that server).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { writeFileSync } from 'node:fs';

export interface TestCertificates {
  /** The CA that signed server.crt. */
  caFile: string;
  /** Another CA, which did not sign server.crt. */
  otherCaFile: string;
  /** Holds server.crt and server.key (scripts/stack.sh's STACK_TLS_DIR). */
  serverDir: string;
}

export function makeCertificates(dir: string): TestCertificates {
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const selfSignedCa = (name: string) =>
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=walbridge test ${name}`,
      '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`));
  selfSignedCa('ca');
  selfSignedCa('other-ca');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', file('server.key'), '-out', file('server.csr'));
  writeFileSync(file('server.ext'), 'subjectAltName = DNS:localhost\nextendedKeyUsage = serverAuth\n');
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', file('server.ext'), '-out', file('server.crt'));
  return { caFile: file('ca.crt'), otherCaFile: file('other-ca.crt'), serverDir: dir };
}
