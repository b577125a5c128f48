import { execFileSync } from 'node:child_process';

// Two network namespaces joined by a veth pair with netem delaying each direction by half the
// RTT: the gateway in one, the devices in the other, so the bench sees a real 50 ms round trip
// without sending a packet outside this machine. Removed in `remove()`, also after a failure;
// stale ones from an interrupted run are removed first.

export interface NetnsPair {
  readonly gatewayNs: string;
  readonly clientNs: string;
  readonly gatewayIp: string;
  remove(): void;
}

const GW = 'vigil-bench-gw';
const CL = 'vigil-bench-cl';
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function removeAll(): void {
  for (const ns of [GW, CL]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // not there
    }
  }
}

/** Creates the pair; throws with the reason when the machine does not allow it. */
export function createNetnsPair(rttMs: number): NetnsPair {
  removeAll();
  try {
    ip('netns', 'add', GW);
    ip('netns', 'add', CL);
    ip('link', 'add', 'vb-gw', 'netns', GW, 'type', 'veth', 'peer', 'name', 'vb-cl', 'netns', CL);
    ip('-n', GW, 'addr', 'add', '10.231.0.1/24', 'dev', 'vb-gw');
    ip('-n', CL, 'addr', 'add', '10.231.0.2/24', 'dev', 'vb-cl');
    for (const [ns, dev] of [
      [GW, 'vb-gw'],
      [CL, 'vb-cl'],
    ] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', dev, 'up');
      execFileSync(
        'ip',
        ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'netem', 'delay', `${rttMs / 2}ms`],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
    }
  } catch (e) {
    removeAll();
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(err.stderr?.toString().trim() || err.message);
  }
  return { gatewayNs: GW, clientNs: CL, gatewayIp: '10.231.0.1', remove: removeAll };
}
