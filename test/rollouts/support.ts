import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import { importBundle } from '../../gateway/releases/import.ts';
import { generateReleaseKey, RELEASE_KEYS_DIR } from '../../gateway/releases/keys.ts';
import { packRelease } from '../../gateway/releases/pack.ts';
import type { RolloutView } from '../../gateway/rollouts/view.ts';
import { trustedKey } from '../../shared/protocol/release-manifest.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { startTestAgent, type TestAgent, testSoftwareReference } from '../e2e/support.ts';
import { provisionUpdates, type TreeFiles, treeDigest, writeTree } from '../release/support.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { gatewayCliAt, type Run } from '../support/run.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// A rollout test bed: a real gateway (TLS, SQLite) trusting a release key made here, releases
// packed and imported the way an operator does it, and swarm members that are real agents on swtpm
// with slots, update.json, a health probe and an operation handler, all in temp directories.

export const APP = 'app';

export const V1: TreeFiles = { 'bin/app': { data: '#!/bin/sh\necho v1\n', exec: true }, ok: 'healthy\n' };
/** Over two chunks, so that a staging asks more than once. */
export const V2: TreeFiles = {
  'bin/app': { data: '#!/bin/sh\necho v2\n', exec: true },
  ok: 'healthy\n',
  'lib/blob': 'x'.repeat(100_000),
};
/** No `ok` file: the health probe of every member fails on it. */
export const SICK: TreeFiles = { 'bin/app': { data: '#!/bin/sh\nexit 1\n', exec: true } };

export const digestOf = (version: string, files: TreeFiles) => toHex(treeDigest(APP, version, files));

/** The reference values a rollout gateway starts with: the test agents' build and app 1.0.0. */
export const REFERENCE = () => ({
  software: [testSoftwareReference(), { name: APP, version: '1.0.0', digest: digestOf('1.0.0', V1) }],
});

/** A release key, trusted by the gateway in `dir` (DIR/release-keys/build.pem). */
export function trustReleaseKey(dir: string): { sign: KeyObject; verify: KeyObject } {
  const key = generateReleaseKey('ed25519');
  mkdirSync(join(dir, RELEASE_KEYS_DIR));
  writeFileSync(join(dir, RELEASE_KEYS_DIR, 'build.pem'), key.publicPem);
  return { sign: createPrivateKey(key.privatePem), verify: createPublicKey(key.privatePem) };
}

/** `vigil-gateway release pack` of a tree of `files` into a bundle under `work`. */
export async function packApp(
  key: KeyObject,
  work: string,
  version: string,
  seq: number,
  files: TreeFiles,
  healthWindowMs = 300,
): Promise<string> {
  const tree = join(work, `tree-${version}`);
  writeTree(tree, files);
  const bundle = join(work, `app-${version}.vigil`);
  await packRelease({ key, name: APP, version, seq, tree, out: bundle, healthWindowMs });
  return bundle;
}

/** Where members connect, and the release key they pin. */
export interface Target {
  readonly url: string;
  readonly caPath: string;
  readonly releaseKey: KeyObject;
}

export interface Bed extends Target {
  readonly gw: TestGateway;
  /** Packs a tree into a bundle and imports it into the gateway (reference value included). */
  importRelease(version: string, seq: number, files: TreeFiles, healthWindowMs?: number): Promise<string>;
  /** The operator API, answering status and JSON. */
  api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }>;
  /** The `vigil-gateway` CLI run as a child process against this gateway. */
  cli(args: string[]): Promise<Run>;
  label(ids: readonly string[], swarm: string): void;
  rollout(id: string): Promise<RolloutView>;
  /** POST /v1/rollouts, which must be accepted; returns the rollout id. */
  startRollout(body: object): Promise<string>;
  /** POST /v1/rollouts/ID/operations, which must be refused: returns the status and the error. */
  refusedOperation(id: string): Promise<{ status: number; code: string; message: string }>;
  /** The gateway's EAR public key, as a third party gets it (GET /v1/ear-key). */
  earKey(): Promise<KeyObject>;
  stop(): Promise<void>;
}

export async function startBed(rounds: object = { periodicMs: 60_000, deadlineMs: 2000 }): Promise<Bed> {
  const gw = await startTestGateway({
    policy: { admission: { mode: 'open' }, rounds, referenceValues: REFERENCE() },
  });
  const key = trustReleaseKey(gw.dir);
  const work = tempDir('vigil-bed-');
  const api = async <T>(method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${gw.operatorToken}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: (await res.json()) as T };
  };
  return {
    gw,
    url: gw.url,
    caPath: gw.caPath,
    releaseKey: key.verify,
    async importRelease(version, seq, files, healthWindowMs) {
      const bundle = await packApp(key.sign, work, version, seq, files, healthWindowMs);
      const imported = await importBundle({ dir: gw.dir, bundle, store: gw.gateway.store, now: Date.now() });
      await gw.gateway.refreshPolicy();
      return imported.record.digest;
    },
    api,
    cli: (args) => gatewayCliAt(args, { dir: gw.dir, apiPort: gw.gateway.apiPort }),
    label(ids, swarm) {
      const [k, v] = swarm.split('=') as [string, string];
      for (const id of ids) {
        const d = gw.gateway.fleet.get(id)!;
        gw.gateway.fleet.save({ ...d, labels: { ...d.labels, [k]: v } });
      }
    },
    async rollout(id) {
      const r = await api<{ rollout: RolloutView }>('GET', `/v1/rollouts/${id}`);
      if (r.status !== 200) throw new Error(`GET rollout ${id}: ${JSON.stringify(r.json)}`);
      return r.json.rollout;
    },
    async startRollout(body) {
      const r = await api<{ rollout: { id: string } }>('POST', '/v1/rollouts', body);
      if (r.status !== 201)
        throw new Error(`POST /v1/rollouts ${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json.rollout.id;
    },
    async refusedOperation(id) {
      const r = await api<{ error?: { code: string; message: string } }>(
        'POST',
        `/v1/rollouts/${id}/operations`,
        {
          name: 'recipe',
        },
      );
      if (!r.json.error) throw new Error(`operation on ${id} released: ${JSON.stringify(r.json)}`);
      return { status: r.status, ...r.json.error };
    },
    async earKey() {
      const { json } = await api<object>('GET', '/v1/ear-key');
      return createPublicKey({ key: json as never, format: 'jwk' });
    },
    async stop() {
      try {
        await gw.stop();
      } finally {
        removeDir(work);
      }
    },
  };
}

export interface Member {
  readonly id: string;
  readonly root: string;
  readonly slots: string;
  agent: TestAgent;
  /** How many times the software was restarted (each activation and each switch back restarts it). */
  restarts(): number;
  /** Command ids the operation handler ran for, one line per run. */
  operationRuns(): string[];
  /** The operate token the handler was given, if it ran. */
  operationToken(): Uint8Array | undefined;
  /** The software log's entries for `app`, oldest first, as digests. */
  appLog(): string[];
  /** Stops the agent (the TPM and the files stay): the device is offline. */
  goOffline(): Promise<void>;
  /** Starts the agent again on the same TPM and directory. */
  comeBack(): Promise<void>;
  stop(): Promise<void>;
}

/** A swarm member: an agent on swtpm updating `app` (slots a/b, v1 installed), connecting to `target`. */
export async function startMember(target: Target): Promise<Member> {
  const root = tempDir('vigil-member-');
  const { dir, slots } = provisionUpdates(root, {
    files: V1,
    operation: `cat > ${root}/op-args; echo "$VIGIL_COMMAND_ID" >> ${root}/op-runs; printf %s "$VIGIL_OPERATE_TOKEN" > ${root}/op-token`,
    settings: { healthWindowMs: 300 },
  });
  const config = { releaseKeys: [trustedKey(target.releaseKey)] };
  const start = (swtpm?: TestAgent['swtpm']) =>
    startTestAgent(target, { dir, config, ...(swtpm && { swtpm }) });
  const agent = await start();
  const lines = (file: string) =>
    existsSync(join(root, file)) ? readFileSync(join(root, file), 'utf8').split('\n').filter(Boolean) : [];
  const m: Member = {
    id: agent.agent.deviceId,
    root,
    slots,
    agent,
    restarts: () => lines('restarts').length,
    operationRuns: () => lines('op-runs'),
    operationToken: () =>
      existsSync(join(root, 'op-token'))
        ? new Uint8Array(Buffer.from(readFileSync(join(root, 'op-token'), 'utf8'), 'hex'))
        : undefined,
    appLog: () =>
      (
        JSON.parse(readFileSync(join(dir, 'sw-log.json'), 'utf8')) as {
          entries: { name: string; digest: string }[];
        }
      ).entries
        .filter((e) => e.name === APP)
        .map((e) => e.digest),
    async goOffline() {
      await m.agent.agent.stop();
    },
    async comeBack() {
      m.agent = await start(m.agent.swtpm);
    },
    async stop() {
      try {
        await m.agent.agent.stop();
      } finally {
        await m.agent.swtpm.stop();
        removeDir(root);
      }
    },
  };
  return m;
}

/** `n` members of the bed's gateway, each connected and affirming. */
export async function startMembers(bed: Bed, n: number): Promise<Member[]> {
  const members = await Promise.all(Array.from({ length: n }, () => startMember(bed)));
  await affirming(bed, members);
  return members;
}

/** Until every member's posture is affirming (after a start or a restart). */
export async function affirming(
  bed: Bed,
  members: readonly { id: string }[],
  timeoutMs = 15_000,
): Promise<void> {
  await eventually(
    () => members.every((m) => bed.gw.gateway.fleet.get(m.id)?.posture === 'affirming'),
    `members affirming: ${members.map((m) => m.id).join(', ')}`,
    timeoutMs,
  );
}

/** Until the rollout's phase is one of `phases`; returns its view. */
export async function phase(
  bed: Bed,
  id: string,
  phases: readonly string[],
  timeoutMs = 20_000,
): Promise<RolloutView> {
  let v: RolloutView | undefined;
  await eventually(
    async () => {
      v = await bed.rollout(id);
      return phases.includes(v.phase);
    },
    `rollout ${id} ${phases.join(' or ')} (last: ${v?.phase}, ${JSON.stringify(v?.members)})`,
    timeoutMs,
  );
  return v!;
}

export interface SwarmCtx {
  bed?: Bed;
  members: Member[];
}

/** A suite with a bed and `n` members started before it and stopped after it. */
export function swarmSuite(name: string, n: number) {
  const it = suite<SwarmCtx>(name, { members: [] });
  it.before(async (ctx) => {
    ctx.bed = await startBed();
    ctx.members = await startMembers(ctx.bed, n);
  });
  it.after(async (ctx) => {
    await Promise.allSettled(ctx.members.map((m) => m.stop()));
    await ctx.bed?.stop();
  });
  return it;
}
