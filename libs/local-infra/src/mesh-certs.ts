import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spiffeId } from '@llmgw/grpc';
import { OPERATOR, SERVICE_NAMES, type ServiceName } from '@llmgw/runtime';
import { requireBinary } from './processes.js';

/** A throwaway certificate authority and one certificate per identity, laid out as cert-manager mounts its secrets. */
export interface MeshCertificates {
  /** The CA's directory (ca.crt, ca.key). */
  caDir: string;
  /** The directory of one identity: ca.crt, tls.crt, tls.key (its MESH_TLS_DIR). */
  dirOf(identity: string): string;
}

/**
 * Makes a new CA in `dir` and, for each identity, a P-256 certificate it signs, valid for
 * `validDays`, usable as server and as client, with the SANs the mesh checks
 * (URI spiffe://llmgateway/<identity>, DNS <identity>) plus localhost and 127.0.0.1 for tools.
 * With openssl; a handful of milliseconds per certificate.
 */
export function createMeshCertificates(dir: string, identities: readonly string[], validDays = 7): MeshCertificates {
  requireBinary('openssl', 'apt-get install -y openssl');
  const caDir = join(dir, 'ca');
  mkdirSync(caDir, { recursive: true, mode: 0o700 });
  const caCrt = join(caDir, 'ca.crt');
  const caKey = join(caDir, 'ca.key');
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', String(validDays)];
  openssl(['req', '-x509', ...newKey, '-keyout', caKey, '-out', caCrt, '-subj', '/CN=llm-gateway mesh CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const dirOf = (identity: string) => join(dir, identity);
  for (const identity of identities) {
    const out = dirOf(identity);
    mkdirSync(out, { recursive: true, mode: 0o700 });
    openssl(['req', '-x509', ...newKey, '-keyout', join(out, 'tls.key'), '-out', join(out, 'tls.crt'), '-subj', `/CN=${identity}`,
      '-CA', caCrt, '-CAkey', caKey,
      '-addext', `subjectAltName=URI:${spiffeId(identity)},DNS:${identity},DNS:localhost,IP:127.0.0.1`,
      '-addext', 'extendedKeyUsage=serverAuth,clientAuth', '-addext', 'basicConstraints=critical,CA:FALSE',
      '-addext', 'keyUsage=critical,digitalSignature']);
    copyFileSync(caCrt, join(out, 'ca.crt'));
  }
  return { caDir, dirOf };
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`);
}

/** Certificates for the six services and the operator; `tlsEnv` is each service's MESH_TLS_DIR. */
export function createMeshPki(dir: string): MeshCertificates & { tlsEnv: Partial<Record<ServiceName, Record<string, string>>>; operatorDir: string } {
  const certs = createMeshCertificates(dir, [...SERVICE_NAMES, OPERATOR]);
  const tlsEnv: Partial<Record<ServiceName, Record<string, string>>> = {};
  for (const n of SERVICE_NAMES) tlsEnv[n] = { MESH_TLS_DIR: certs.dirOf(n) };
  return { ...certs, tlsEnv, operatorDir: certs.dirOf(OPERATOR) };
}
