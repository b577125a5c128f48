import type { Logger } from 'pino';
import pino from 'pino';
import { type Agent, startAgent } from '../../device/agent.ts';
import { type AgentConfig, DEFAULT_AK_HANDLE, parseGatewayUrl } from '../../device/config.ts';
import { measureSoftware } from '../../device/software.ts';
import type { McuPort } from '../../firmware-shims/serial/config.ts';
import type { Result } from '../../shared/protocol/index.ts';
import type { TestGateway } from '../support/gateway.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

export const TEST_SOFTWARE = { name: 'vigil-agent', version: 'e2e' } as const;
/** A small, stable tree stands in for the agent's code so the digest does not change with every edit. */
const TEST_SOFTWARE_ROOT = new URL('../../shared/protocol', import.meta.url).pathname;

export interface TestAgent {
  readonly agent: Agent;
  readonly swtpm: Swtpm;
  readonly dir: string;
  /** Resolves with the next `result` the agent receives. */
  nextResult(timeoutMs?: number): Promise<Result>;
  stop(): Promise<void>;
}

export const quiet = (): Logger => pino({ level: process.env.VIGIL_TEST_LOG ?? 'silent' });

/** Waits for one emission of an event, failing after a bound so a broken test ends. */
export function waitFor<T>(
  subscribe: (resolve: (v: T) => void) => () => void,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const unsubscribe = subscribe((v) => {
      clearTimeout(timer);
      unsubscribe();
      resolve(v);
    });
  });
}

/** A real agent on its own swtpm, measuring a fixed software tree, connected to the test gateway. */
export async function startTestAgent(
  gw: Pick<TestGateway, 'url' | 'caPath'>,
  opts: {
    swtpm?: Swtpm;
    dir?: string;
    logger?: Logger;
    /** Settings of agent.json beyond the test defaults (release keys, say). */
    config?: Partial<AgentConfig>;
    mcus?: readonly McuPort[];
  } = {},
): Promise<TestAgent> {
  const swtpm = opts.swtpm ?? (await startSwtpm());
  const dir = opts.dir ?? tempDir('vigil-agent-');
  try {
    const agent = await startAgent({
      dir,
      config: {
        version: 1,
        gateway: parseGatewayUrl(gw.url),
        ca: gw.caPath,
        tpm: swtpm.tcti,
        ek: 'ecc',
        akHandle: DEFAULT_AK_HANDLE,
        swPcr: 14,
        logs: { ima: `${dir}/no-ima`, boot: `${dir}/no-boot` },
        ...(opts.mcus && { mcus: opts.mcus }),
        ...opts.config,
      },
      logger: opts.logger ?? quiet(),
      software: { ...TEST_SOFTWARE, root: TEST_SOFTWARE_ROOT },
      reconnect: { baseMs: 50, capMs: 500 },
    });
    return {
      agent,
      swtpm,
      dir,
      nextResult: (timeoutMs) =>
        waitFor<Result>(
          (resolve) => {
            agent.on('result', resolve);
            return () => agent.off('result', resolve);
          },
          'a result',
          timeoutMs,
        ),
      async stop() {
        try {
          await agent.stop();
        } finally {
          await swtpm.stop();
          removeDir(dir);
        }
      },
    };
  } catch (e) {
    await swtpm.stop();
    removeDir(dir);
    throw e;
  }
}

/** The software the test agents measure, as a policy reference value. */
export function testSoftwareReference() {
  const m = measureSoftware({ ...TEST_SOFTWARE, root: TEST_SOFTWARE_ROOT });
  return { name: m.name, version: m.version, digest: Buffer.from(m.digest).toString('hex') };
}
