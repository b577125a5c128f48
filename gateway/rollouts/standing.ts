import type { Clock } from '../../shared/clock.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import type { DeviceConnection } from '../connections/device-connection.ts';
import type { Connections } from '../connections/registry.ts';
import type { DeviceRecord } from '../model.ts';
import type { RemoteMembers } from './remote-members.ts';

// A member's standing as the rollout engine reads it: whether it can be asked here (an attested
// connection whose posture is fresh and good), whether it is fresh and good anywhere (with several
// gateways, on another one, judged from its claim and record: remote-members.ts), and what its
// last appraised software log says it runs. The barrier, the machine's `fresh` and every command
// read these, so they judge alike.

export interface StandingDeps {
  readonly connections: Pick<Connections, 'attestedOf'>;
  readonly fleet: { get(id: string): DeviceRecord | undefined };
  /** Several gateways: members held elsewhere. */
  readonly remote: RemoteMembers | undefined;
  readonly clock: Clock;
}

export class Standing {
  constructor(private readonly d: StandingDeps) {}

  /** The member's attested connection here, while its posture is fresh and good. */
  askable(device: string): DeviceConnection | undefined {
    const conn = this.d.connections.attestedOf(device);
    return conn && conn.trustedUntil > this.d.clock.now() ? conn : undefined;
  }

  /** Fresh and good on an attested connection here, or (several gateways) on another gateway. */
  fresh(device: string): boolean {
    return this.askable(device) !== undefined || (this.d.remote?.fresh(device) ?? false);
  }

  /** The entry of `name` in the device's last appraised software log. */
  running(device: string, name: string) {
    return this.d.fleet.get(device)?.swLog?.running.find((s) => s.name === name);
  }

  /** The digest of `name` the device's last appraised software log shows, hex. */
  measured(device: string, name: string): string | undefined {
    const sw = this.running(device, name);
    return sw ? toHex(sw.digest) : undefined;
  }
}
