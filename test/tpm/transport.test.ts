import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openTransport } from '../../firmware-shims/tpm/tcti.ts';
import { Tpm } from '../../firmware-shims/tpm/tpm.ts';
import { TpmError } from '../../firmware-shims/tpm/tpm-error.ts';
import { type TpmTransport, TpmTransportError } from '../../firmware-shims/tpm/transport.ts';
import { Writer } from '../../shared/tpm/bytes.ts';
import { freePort } from '../support/ports.ts';
import { startTpm, type TpmFixture } from './fixture.ts';

const t = suite('transports and errors');
let f: TpmFixture;

t.before(async () => {
  f = await startTpm();
});
t.after(async () => {
  await f?.stop();
});

const rejection = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

t('a command after swtpm restarted under a live transport succeeds on a new connection', async () => {
  await f.tpm.getRandom(8);
  await f.tpm.pcrExtend(10, new Uint8Array(32).fill(1));
  await f.swtpm.restart();
  assert.is((await f.tpm.getRandom(48)).length, 48);
  // PCRs reset with the TPM: proof that we reached the restarted one.
  assert.is(Buffer.from((await f.tpm.pcrRead([10])).get(10)!).toString('hex'), '00'.repeat(32));
});

t('concurrent commands are serialised', async () => {
  const results = await Promise.all(Array.from({ length: 20 }, () => f.tpm.getRandom(16)));
  assert.is(new Set(results.map((r) => Buffer.from(r).toString('hex'))).size, 20);
});

// Fault injection in front of the real swtpm: the first `busy` commands are answered as a busy
// TPM answers (TPM_RC_RETRY, as swtpm does right after it starts), the rest reach swtpm.
function busyThenReal(real: TpmTransport, busy: number): TpmTransport & { busyAnswers: number } {
  const retry = new Writer().u16(0x8001).u32(10).u32(0x922).finish();
  return {
    description: `busy ${real.description}`,
    busyAnswers: 0,
    async send(command) {
      if (this.busyAnswers < busy) {
        this.busyAnswers++;
        return retry;
      }
      return real.send(command);
    },
    close: () => real.close(),
  };
}

t('TPM_RC_RETRY is retried with backoff, then the command succeeds', async () => {
  const transport = busyThenReal(openTransport(f.swtpm.tcti), 3);
  const tpm = new Tpm(transport);
  assert.is((await tpm.getRandom(8)).length, 8);
  assert.is(transport.busyAnswers, 3);
  await tpm.close();
});

t('a TPM that stays busy fails with TPM_RC_RETRY after a bounded number of attempts', async () => {
  const transport = busyThenReal(openTransport(f.swtpm.tcti), 1000);
  const tpm = new Tpm(transport, { attempts: 4, firstDelayMs: 1, maxDelayMs: 5 });
  const err = await rejection(tpm.getRandom(8));
  assert.ok(err instanceof TpmError, String(err));
  assert.is(err.rcName, 'TPM_RC_RETRY (0x922)');
  assert.is(transport.busyAnswers, 4);
  await tpm.close();
});

t('a TPM error carries the code and its name', async () => {
  const err = await rejection(f.tpm.flush(0x80ffffff));
  assert.ok(err instanceof TpmError, String(err));
  assert.match(err.message, 'TPM2_FlushContext');
  assert.match(err.rcName, /^TPM_RC_/);
  assert.ok(err.rc !== 0);
});

t('connection refused says to check swtpm on that port', async () => {
  const port = await freePort();
  const tpm = await Tpm.open(`swtpm:host=127.0.0.1,port=${port}`);
  const err = await rejection(tpm.getRandom(4));
  await tpm.close();
  assert.ok(err instanceof TpmTransportError, String(err));
  assert.match(err.message, `is swtpm running on 127.0.0.1:${port}?`);
});

t('a missing device says to enable the overlay', async () => {
  const transport = openTransport('device:/nonexistent/tpmrm0');
  const err = await rejection(transport.send(new Uint8Array(10)));
  await transport.close();
  assert.ok(err instanceof TpmTransportError, String(err));
  assert.match(err.message, 'dtoverlay=tpm-slb9670');
});

t.run();
