import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { credentials, experimental, ServerCredentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { envInt, envString, parseEnv } from '@llmgw/config';
import { z } from 'zod';

/*
 * Mutual TLS inside the mesh. Each process holds one certificate whose URI SAN names its
 * identity, spiffe://llmgateway/<service>; servers require a client certificate from the mesh CA
 * and authorize each method by the caller's identity (authorize.ts); clients check that the
 * server they reached is the service they meant to dial, whatever its address.
 */

export const TRUST_DOMAIN = 'llmgateway';
const SPIFFE_PREFIX = `spiffe://${TRUST_DOMAIN}/`;

export function spiffeId(identity: string): string {
  return `${SPIFFE_PREFIX}${identity}`;
}

/** The mesh identity a certificate's SAN names, if any (subjectaltname as Node reports it). */
export function identityFromSan(subjectAltName: string | undefined): string | undefined {
  for (const entry of (subjectAltName ?? '').split(', ')) {
    if (entry.startsWith(`URI:${SPIFFE_PREFIX}`)) return entry.slice(4 + SPIFFE_PREFIX.length);
  }
  return undefined;
}

/** The caller's identity on an authorized TLS connection; undefined on plaintext. */
export function peerIdentity(peer: PeerCertificate | undefined): string | undefined {
  return identityFromSan(peer?.subjectaltname);
}

/** cert-manager's names for a certificate secret mounted as a directory. */
export interface MeshTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export function meshTlsFilesIn(dir: string): MeshTlsFiles {
  return { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
}

/** How a process talks to its peers: mutual TLS, or plaintext in development and monolithic mode. */
export interface MeshTransport {
  /** This process's identity, from its certificate; undefined when plaintext. */
  readonly identity: string | undefined;
  serverCredentials(): ServerCredentials;
  /** Resolves once the certificate files have been read (a server must not listen before); rejects if they cannot be. */
  ready(): Promise<void>;
  /** What dialling the service `peer` needs (TLS: a check that the server is that service). */
  channelTo(peer: string): ChannelLink;
}

export interface ChannelLink {
  credentials: ChannelCredentials;
  options: ChannelOptions;
}

export const PLAINTEXT: MeshTransport = {
  identity: undefined,
  serverCredentials: () => ServerCredentials.createInsecure(),
  ready: () => Promise.resolve(),
  channelTo: () => ({ credentials: credentials.createInsecure(), options: {} }),
};

/**
 * Mutual TLS from files, re-read every `refreshMs` so a renewed certificate (cert-manager
 * rewrites the secret's files in place) is used for new connections without a restart.
 */
export function meshTls(files: MeshTlsFiles, refreshMs: number): MeshTransport {
  const identity = certificateIdentity(files.certFile);
  const provider = new experimental.FileWatcherCertificateProvider({
    caCertificateFile: files.caFile,
    certificateFile: files.certFile,
    privateKeyFile: files.keyFile,
    refreshIntervalMs: refreshMs,
  });
  const server = experimental.createCertificateProviderServerCredentials(provider, provider, true);
  const loaded = filesRead(provider, files.certFile, true);
  const links = new Map<string, ChannelLink>();
  return {
    identity,
    serverCredentials: () => server,
    ready: () => loaded,
    channelTo: (peer) => {
      let link = links.get(peer);
      if (!link) {
        link = {
          credentials: experimental.createCertificateProviderChannelCredentials(provider, provider, {
            // After the hostname check (against the peer's name, below): the SAN must name the peer.
            checkServerIdentity: (_host, cert) => {
              const found = identityFromSan(cert.subjectaltname);
              return found === peer ? undefined : new Error(`expected the certificate of ${peer}, got ${found ?? 'no mesh identity'}`);
            },
          }),
          // The name checked and sent as SNI is the service's, so any address works (IP, DNS, headless).
          options: { 'grpc.ssl_target_name_override': peer },
        };
        links.set(peer, link);
      }
      return link;
    },
  };
}

function certificateIdentity(certFile: string): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(certFile));
  } catch (err) {
    throw new Error(`cannot read the mesh certificate ${certFile}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const identity = identityFromSan(cert.subjectAltName);
  if (!identity) throw new Error(`the mesh certificate ${certFile} has no ${SPIFFE_PREFIX}<service> URI SAN`);
  return identity;
}

export const meshTlsEnvSchema = z.object({
  /** A directory with ca.crt, tls.crt and tls.key (a cert-manager secret); unset: plaintext. */
  MESH_TLS_DIR: envString().optional(),
  /** How often the files are re-read. */
  MESH_TLS_REFRESH_MS: envInt({ min: 100, default: 60_000 }),
});

export function meshTransportFromEnv(env: NodeJS.ProcessEnv = process.env): MeshTransport {
  const v = parseEnv(meshTlsEnvSchema, env);
  return v.MESH_TLS_DIR ? meshTls(meshTlsFilesIn(v.MESH_TLS_DIR), v.MESH_TLS_REFRESH_MS) : PLAINTEXT;
}

/**
 * Server-only TLS for a public port (no client certificate: callers bring API keys), re-read
 * every `refreshMs`. Only its server side is used.
 */
export function publicTls(certFile: string, keyFile: string, refreshMs: number): MeshTransport {
  const provider = new experimental.FileWatcherCertificateProvider({ certificateFile: certFile, privateKeyFile: keyFile, refreshIntervalMs: refreshMs });
  // grpc-js 1.14 hands this function's first two arguments to the constructor in the other order;
  // with no CA provider the identity provider ends up where it belongs (tested in mesh-tls.test.ts).
  const server = experimental.createCertificateProviderServerCredentials(provider, null, false);
  const loaded = filesRead(provider, certFile, false);
  return { ...PLAINTEXT, serverCredentials: () => server, ready: () => loaded };
}

/** The provider reads its files in the background; this settles on its first reading. */
function filesRead(provider: experimental.FileWatcherCertificateProvider, certFile: string, withCa: boolean): Promise<void> {
  const loaded = new Promise<void>((resolve, reject) => {
    let pending = withCa ? 2 : 1;
    const onUpdate = (update: object | null) => {
      if (update === null) reject(new Error(`cannot read the TLS files next to ${certFile}`));
      else if (--pending === 0) resolve();
    };
    // Kept for the process's life: removing the last listener would stop the provider's refresh.
    if (withCa) provider.addCaCertificateListener(onUpdate);
    provider.addIdentityCertificateListener(onUpdate);
  });
  loaded.catch(() => undefined);
  return loaded;
}
