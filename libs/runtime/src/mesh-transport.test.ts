import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createMeshCertificates } from '@llmgw/local-infra';
import { meshTransportOf } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'llmgw-runtime-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const certs = createMeshCertificates(dir, ['quota', 'router']);

describe('a service process and its mesh certificate', () => {
  it('takes the certificate of the service it runs', () => {
    expect(meshTransportOf('quota', { MESH_TLS_DIR: certs.dirOf('quota') }).identity).toBe('quota');
  });

  it('refuses the certificate of another service', () => {
    expect(() => meshTransportOf('quota', { MESH_TLS_DIR: certs.dirOf('router') })).toThrow('MESH_TLS_DIR holds the certificate of router, not of quota');
  });

  it('runs plaintext in development, and refuses to in production', () => {
    expect(meshTransportOf('quota', {}).identity).toBeUndefined();
    expect(() => meshTransportOf('quota', { LLMGW_PROFILE: 'production' })).toThrow(/production needs MESH_TLS_DIR/);
    expect(meshTransportOf('quota', { LLMGW_PROFILE: 'production', MESH_TLS_DIR: certs.dirOf('quota') }).identity).toBe('quota');
  });

  it('names a directory without certificates', () => {
    expect(() => meshTransportOf('quota', { MESH_TLS_DIR: join(dir, 'missing') })).toThrow(/cannot read the mesh certificate .*missing\/tls\.crt/);
  });
});
