import type { Logger } from 'pino';
import type { Clock, Random } from '../../shared/clock.ts';
import type { Report } from '../../shared/protocol/messages.ts';
import { fromHex, toHex } from '../../shared/tpm/bytes.ts';
import type { DeviceConnection } from '../connections/device-connection.ts';
import type { Replies } from '../connections/replies.ts';
import type { MessageRouter } from '../connections/router.ts';
import type { ArtifactChunks } from './chunks.ts';
import { remaining } from './commands.ts';
import type { HeldRollouts } from './held.ts';
import type { CommandsInFlight, Sent } from './in-flight.ts';
import type { ForwardedReport } from './peers.ts';
import type { Standing } from './standing.ts';

// A member's `report` on a connection this gateway holds (PROTOCOL.md §6.3), whichever gateway
// steps its rollout: told apart as open, late or never sent by the device's commands in flight;
// a `fetching` report served here with artifact bytes (every gateway holds the artifact); any
// other report stepped here, or handed on to the owner of a copy.

export interface MemberReportsDeps {
  readonly held: Pick<HeldRollouts, 'get' | 'release' | 'owns' | 'sentBefore'>;
  readonly inFlight: Pick<CommandsInFlight, 'lookup'>;
  readonly standing: Pick<Standing, 'askable'>;
  readonly chunks: ArtifactChunks;
  readonly replies: Replies;
  /** A report on a command of a rollout stepped here. */
  readonly take: (report: ForwardedReport) => void;
  /** A report on a command of a copy, for its owner. */
  readonly forward: (report: ForwardedReport) => void;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
}

export class MemberReports {
  /** The last want served on each connection (stage id and offset). */
  readonly #served = new WeakMap<DeviceConnection, string>();

  constructor(private readonly d: MemberReportsDeps) {}

  /** Takes `report` from the router: from attested connections only. */
  register(router: MessageRouter): void {
    router.on(
      'report',
      ['attested'],
      (conn, m) => this.#onReport(conn, m),
      (phase) =>
        phase === 'awaiting-hello'
          ? 'report before hello: send hello first, then attest'
          : 'report before this connection attested: a report counts only from a connection whose first round was appraised good',
    );
  }

  #onReport(conn: DeviceConnection, m: Report): void {
    const device = conn.deviceId;
    const id = toHex(m.command);
    const found = this.d.inFlight.lookup(device, id);
    if (found.kind === 'settled') return; // late: answered already, or past its deadline
    if (found.kind === 'unknown') {
      if (this.d.held.sentBefore(device, id)) return; // answered before the gateway restarted
      this.d.replies.refuse(
        conn,
        'command-unknown',
        `command ${id} was not sent to this device; the report was ignored`,
      );
      return;
    }
    const sent = found.item;
    if (m.state === 'fetching') {
      // A want already served on this connection is a repeat (a resent stage answered with its
      // progress, a chunk that arrived after the device moved on): TCP delivers what was sent, so
      // serving it again would only double every chunk from here on. A new connection asks afresh.
      if (!m.want) return;
      const key = `${id} ${m.want.offset}`;
      if (this.#served.get(conn) === key) return;
      this.#served.set(conn, key);
      this.#serve(device, sent, m.want);
      return;
    }
    const report: ForwardedReport = {
      rollout: sent.rollout,
      device,
      command: id,
      state: m.state,
      ...('code' in m && m.code !== undefined && { code: m.code }),
      ...(m.detail !== undefined && { detail: m.detail }),
    };
    if (this.d.held.owns(sent.rollout)) this.d.take(report);
    else this.d.forward(report);
  }

  #serve(device: string, sent: Sent, want: { offset: number; length: number }): void {
    const r = this.d.held.get(sent.rollout);
    const release = this.d.held.release(sent.rollout);
    if (!r || !release) return;
    this.d.chunks
      .serve(device, release.artifact, want, (offset, data) => {
        const conn = this.d.standing.askable(device);
        if (!conn) return; // it asks again once back: the stage goes out again then
        this.d.replies.send(conn, {
          t: 'command',
          op: 'chunk',
          id: this.d.random(16),
          rollout: r.spec.id,
          deadline: remaining(sent.deadlineAt, this.d.clock.now()),
          command: fromHex(sent.id),
          offset,
          data,
        });
      })
      .then(
        (o) => {
          if (o.outcome === 'refused')
            this.d.log.warn({ device, rollout: r.spec.id, detail: o.detail }, 'artifact bytes not sent');
        },
        (err) => this.d.log.error({ err, device, rollout: r.spec.id }, 'reading the artifact failed'),
      );
  }
}
