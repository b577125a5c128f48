import type {
  Challenge,
  Claims,
  Command,
  ErrorMessage,
  Evidence,
  Hello,
  Message,
  Report,
  Result,
} from '../../shared/protocol/index.ts';
import { encodeClaims } from '../../shared/protocol/index.ts';

// Deterministic sample messages: fills make a wrong-field bug visible in a diff.
const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);

export const hello: Hello = {
  t: 'hello',
  ek: fill(90, 0xe1),
  ekCert: fill(300, 0xc1),
  ak: fill(88, 0xa1),
  attester: 'tpm2',
  agent: 'vigil-agent/0.1.0',
  swPcr: 14,
};

export const challenge: Challenge = {
  t: 'challenge',
  round: fill(16, 0x01),
  nonce: fill(32, 0x02),
  reason: 'onboard',
  pcrs: [0, 1, 7, 14],
  logs: { sw: 0, ima: 10 },
  activate: { blob: fill(68, 0x03), secret: fill(70, 0x04) },
  deadline: 30000,
};

export const claims: Claims = {
  nonce: fill(32, 0x02),
  pcrs: new Map([
    [0, fill(32, 0x10)],
    [14, fill(32, 0x1e)],
  ]),
  sw: { name: 'vigil-agent', version: '0.1.0' },
  logs: {
    sw: {
      from: 0,
      entries: [{ digest: fill(32, 0x33), name: 'vigil-agent', version: '0.1.0' }],
      more: false,
    },
    ima: { from: 10, entries: ['10 abc ima-ng sha256:00 /bin/sh'], more: true },
    boot: { from: 0, entries: [fill(40, 0x44)], more: false },
  },
  activation: fill(32, 0x05),
  time: 1795000000000,
};

export const evidence: Evidence = {
  t: 'evidence',
  round: fill(16, 0x01),
  body: encodeClaims(claims),
  attest: fill(129, 0x06),
  sig: fill(72, 0x07),
};

export const result: Result = {
  t: 'result',
  round: fill(16, 0x01),
  status: 'contraindicated',
  reasons: ['sw-not-allowed'],
  expires: 1795000600000,
  ear: fill(96, 0x84),
};

export const error: ErrorMessage = {
  t: 'error',
  code: 'malformed',
  detail: 'payload.t: ...',
  round: fill(16, 1),
};

const command = { t: 'command', id: fill(16, 0xc0), rollout: 'r-2026-01', deadline: 600_000 } as const;

/** One command of every op. */
export const commands: readonly Command[] = [
  { ...command, op: 'stage', manifest: fill(200, 0xd2) },
  { ...command, op: 'chunk', command: fill(16, 0xc1), offset: 65_536, data: fill(1000, 0xda) },
  { ...command, op: 'activate', at: 1795000000000 },
  { ...command, op: 'commit' },
  { ...command, op: 'rollback' },
  {
    ...command,
    op: 'operate',
    operation: { name: 'switch-recipe', args: new Map([['recipe', 'B']]), token: fill(120, 0x70) },
    at: 1795000060000,
  },
  { ...command, op: 'cancel', command: fill(16, 0xc2) },
];

const report = { t: 'report', command: fill(16, 0xc1), sw: { name: 'app', version: '1.0.0' } } as const;

/** A report of every shape: fetching with want, an outcome with a code, a plain progress. */
export const reports: readonly Report[] = [
  { ...report, state: 'fetching', want: { offset: 131_072, length: 65_536 } },
  { ...report, state: 'rolled-back', code: 'health-failed', detail: 'probe exited 1' },
  { ...report, state: 'staged' },
];

export const ALL: readonly Message[] = [hello, challenge, evidence, result, error, ...commands, ...reports];
