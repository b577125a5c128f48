import { readTokenFile } from '../../../gateway/api/auth.ts';
import { type Bed, type Member, startBed, startMembers, V2 } from '../../rollouts/support.ts';

// A swarm for the rollouts page: the rollout test bed (a real gateway trusting a release key,
// whose API serves the dashboard) with `n` real agents on swtpm carrying the update machinery,
// labelled into `swarm`, and app 2.0.0 (seq 2) imported, ready to be rolled to.

export interface RolloutSwarm {
  readonly bed: Bed;
  readonly members: Member[];
  /** The dashboard's address, ending in a slash. */
  readonly url: string;
  readonly operatorToken: string;
  readonly viewerToken: string;
  /** The digest of app 2.0.0, the target. */
  readonly target: string;
  stop(): Promise<void>;
}

export async function startRolloutSwarm(n: number, swarm: string): Promise<RolloutSwarm> {
  const bed = await startBed();
  const members: Member[] = [];
  const stop = async () => {
    await Promise.allSettled(members.map((m) => m.stop()));
    await bed.stop();
  };
  try {
    members.push(...(await startMembers(bed, n)));
    members.sort((a, b) => (a.id < b.id ? -1 : 1));
    bed.label(
      members.map((m) => m.id),
      swarm,
    );
    const target = await bed.importRelease('2.0.0', 2, V2);
    const g = bed.gw.gateway;
    const viewerToken = readTokenFile(g.config.viewerToken);
    if (!viewerToken) throw new Error(`rollout swarm: no ${g.config.viewerToken}`);
    return {
      bed,
      members,
      url: `http://127.0.0.1:${g.apiPort}/`,
      operatorToken: bed.gw.operatorToken,
      viewerToken,
      target,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
