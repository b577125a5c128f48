import type { McuClaims, McuRecord } from '../../shared/mcu/claims.ts';
import { MAX_DETAIL_LENGTH } from '../../shared/mcu/messages.ts';
import type { McuPort } from './config.ts';
import { type LinkOutcome, SerialLink } from './link.ts';

// The lead attester's side of composite evidence: in each round, every configured MCU is asked
// for evidence on the round's nonce, all at once, within the time the round leaves. What comes
// back is the `mcus` claim of the body, a record per slot, evidence or the fault that stood in
// its way. Nothing here throws: a broken MCU must never cost the device its own round.

export class McuCollector {
  private readonly links: ReadonlyMap<string, SerialLink>;

  constructor(ports: readonly McuPort[], options: { readonly resends?: number } = {}) {
    this.links = new Map(
      ports.map((p) => [
        p.slot,
        new SerialLink({
          path: p.path,
          ...(p.baudRate !== undefined && { baudRate: p.baudRate }),
          ...(options.resends !== undefined && { resends: options.resends }),
        }),
      ]),
    );
  }

  get slots(): readonly string[] {
    return [...this.links.keys()];
  }

  /** Evidence of every MCU for this round's nonce, within `budgetMs`. Never rejects. */
  async collect(nonce: Uint8Array, budgetMs: number): Promise<McuClaims> {
    const records = await Promise.all(
      [...this.links].map(async ([slot, link]): Promise<[string, McuRecord]> => {
        if (budgetMs <= 0) {
          const detail = `the round's deadline leaves no time to ask the MCU on ${link.path}`;
          return [slot, { kind: 'fault', fault: 'timeout', detail }];
        }
        const outcome = await link.request({ t: 'evidence', nonce }, budgetMs);
        if (!outcome.ok) return [slot, fault(outcome)];
        const { idk, cert, ev } = outcome.response;
        return [slot, { kind: 'evidence', idk, cert, ev }];
      }),
    );
    return new Map(records);
  }

  /** Every MCU's identity answer, for `vigil-agent` to show what to admit. Never rejects. */
  async hello(
    budgetMs: number,
  ): Promise<ReadonlyMap<string, LinkOutcome<{ idk: Uint8Array; cert: Uint8Array }>>> {
    const answers = await Promise.all(
      [...this.links].map(
        async ([slot, link]) => [slot, await link.request({ t: 'hello' }, budgetMs)] as const,
      ),
    );
    return new Map(answers);
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
  }
}

function fault(outcome: Extract<LinkOutcome<unknown>, { ok: false }>): McuRecord {
  // The detail travels in the signed body: bounded, as the gateway's decoder requires.
  return { kind: 'fault', fault: outcome.fault, detail: outcome.detail.slice(0, MAX_DETAIL_LENGTH) };
}
