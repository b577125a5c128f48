// `npm start`: a gateway and a small fleet of real agents, each on its own software TPM, on this
// machine. It goes through the same steps an operator does: init the gateway, provision each
// device (EK, AK), admit the EK hashes, register the agent's release, run. The first device has
// an MCU on a serial line (an emulator behind a pseudo-terminal), admitted with its firmware as a
// reference value. Ctrl-C stops it all.
import { createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { type Agent, startAgent } from '../device/agent.ts';
import { initAgent } from '../device/init.ts';
import { measureSoftware } from '../device/software.ts';
import { freePortPair } from '../firmware-shims/swtpm/free-ports.ts';
import { type SwtpmProcess, startSwtpmProcess } from '../firmware-shims/swtpm/swtpm-process.ts';
import { type Gateway, startGateway } from '../gateway/gateway.ts';
import { initGateway } from '../gateway/setup/init.ts';
import { verifyEarCwt } from '../gateway/verifier/ear.ts';
import type { Challenge, Result } from '../shared/protocol/index.ts';
import { mcuNotes, startDemoMcu } from './demo-mcu.ts';

const FLEET = 3;
const root = resolve(process.env.VIGIL_DEMO_DIR ?? '.vigil/demo');
const gwDir = join(root, 'gateway');

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => done(false));
    s.listen(port, '127.0.0.1', () => s.close(() => done(true)));
  });
}

const stamp = () => new Date().toISOString().slice(11, 19);
const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  mkdirSync(root, { recursive: true });
  const mqttPort = (await portFree(8883)) ? 8883 : 0;
  const apiPort = (await portFree(8080)) ? 8080 : 0;
  const fresh = !existsSync(join(gwDir, 'gateway.json'));
  initGateway({ dir: gwDir, hosts: ['localhost'] });
  // Demo rounds every 10 s, so re-attestation on the same connection is visible quickly.
  const policyPath = join(gwDir, 'policy.json');
  const policy = JSON.parse(readFileSync(policyPath, 'utf8'));
  policy.rounds = { periodicMs: 10_000, jitter: 0.1, deadlineMs: 5_000, expiryMs: 30_000 };
  const pump = await startDemoMcu(join(root, 'mcu-1'), 'pump');
  policy.mcus = { ...policy.mcus, firmware: { [pump.model]: [pump.firmware] } };
  writeFileSync(policyPath, `${JSON.stringify(policy, null, 2)}\n`);

  const gwLog = pino({ level: 'info' }, pino.destination({ dest: join(root, 'gateway.log'), sync: false }));
  const gateway: Gateway = await startGateway({ dir: gwDir, mqttPort, apiPort, logger: gwLog });
  const tpms: SwtpmProcess[] = [];
  const agents: Agent[] = [];
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say('\nstopping the demo fleet and the gateway...');
    await Promise.allSettled(agents.map((a) => a.stop()));
    await gateway.close();
    await Promise.allSettled(tpms.map((t) => t.stop()));
    await pump.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());

  say(
    `Vigil demo: gateway on mqtts://localhost:${gateway.mqttPort} (TLS 1.3), data in ${root}${fresh ? ' (new)' : ''}`,
  );
  const software = measureSoftware();
  gateway.store.addRelease({
    name: software.name,
    version: software.version,
    digest: Buffer.from(software.digest).toString('hex'),
    addedAt: Date.now(),
  });

  for (let i = 1; i <= FLEET; i++) {
    const stateDir = join(root, `tpm-${i}`);
    mkdirSync(stateDir, { recursive: true });
    const [port, ctrl] = await freePortPair();
    const tpm = await startSwtpmProcess(stateDir, port, ctrl);
    tpms.push(tpm);
    const dir = join(root, `agent-${i}`);
    const init = await initAgent({
      dir,
      gateway: `mqtts://localhost:${gateway.mqttPort}`,
      ca: join(gwDir, 'ca.pem'),
      tpm: tpm.tcti,
      ek: 'ecc',
      logs: { ima: join(dir, 'no-ima'), boot: join(dir, 'no-boot') },
      ...(i === 1 && { mcus: [pump.port] }),
    });
    gateway.store.admit(init.ekHash, `demo device ${i}`);
    say(`  device ${i}: id ${init.deviceId}, EK ${init.ekHash.slice(0, 16)}… admitted (swtpm on :${port})`);
    if (i === 1) {
      gateway.store.admitMcu({
        identity: pump.identity,
        device: init.deviceId,
        note: 'demo pump',
        admittedAt: Date.now(),
      });
      say(
        `            MCU pump (${pump.model}, emulator on ${pump.port.path}): identity ${pump.identity.slice(0, 16)}… admitted, firmware ${pump.firmware.slice(0, 16)}… a reference value`,
      );
    }
  }
  await gateway.refreshPolicy();
  say(
    `  release ${software.name} ${software.version} registered (manifest ${Buffer.from(software.digest).toString('hex').slice(0, 16)}…)\n`,
  );

  const earKey = createPublicKey(readFileSync(join(gwDir, 'ear-key.pem')));
  for (let i = 1; i <= FLEET; i++) {
    const dir = join(root, `agent-${i}`);
    const log = pino(
      { level: 'info' },
      pino.destination({ dest: join(root, `agent-${i}.log`), sync: false }),
    );
    const agent = await startAgent({ dir, logger: log });
    agents.push(agent);
    const id = agent.deviceId.slice(0, 12);
    const sockets: unknown[] = [];
    let challenge: Challenge | undefined;
    agent.on('challenge', (c: Challenge) => {
      challenge = c;
    });
    agent.on('result', (r: Result) => {
      const socket = agent.socket();
      if (!sockets.includes(socket)) sockets.push(socket);
      const reason = challenge?.reason ?? '?';
      const notes = [
        r.reasons.length > 0 ? `[${r.reasons.join(', ')}]` : '',
        challenge?.activate && r.status === 'affirming' ? 'AK activated and enrolled' : '',
        reason === 'onboard' ? `connection #${sockets.length}` : `same TLS connection #${sockets.length}`,
        ...mcuNotes(verifyEarCwt(r.ear, earKey)),
      ];
      say(
        `${stamp()}  ${id}  ${reason.padEnd(9)} ${r.status.padEnd(16)} ${notes.filter(Boolean).join('  ')}`,
      );
    });
  }
  say(`Agents running; each re-attests every ~10 s on its connection. Logs: ${root}/*.log`);
  const dashboard = `http://${gateway.config.api.host}:${gateway.apiPort}/`;
  const token = readFileSync(gateway.config.operatorToken, 'utf8').trim();
  say(`Dashboard: ${dashboard}  (sign in with ${gateway.config.operatorToken})`);
  say(`  or open the sign-in link:  ${dashboard}#signin=${encodeURIComponent(token)}`);
  say(`Try, in another terminal:  npm run gateway -- devices --dir ${gwDir}`);
  say(`  device 1 and its MCU:       npm run gateway -- show ${agents[0]!.deviceId} --dir ${gwDir}`);
  say(`  and attest the fleet now:  npm run gateway -- attest --all --dir ${gwDir}`);
  say('Ctrl-C stops everything.\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`vigil demo: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
