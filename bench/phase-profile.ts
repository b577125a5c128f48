import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

// IPC handlers for a bench child (gateway, fleet shard): a CPU profile of whatever runs between
// profileStart and profileStop, so a profile shows a round, not the start-up around it.

export function phaseProfiler(): {
  profileStart(): Promise<boolean>;
  profileStop(args: unknown): Promise<string>;
} {
  const inspector = new Session();
  inspector.connect();
  return {
    async profileStart() {
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.setSamplingInterval', { interval: 200 });
      await inspector.post('Profiler.start');
      return true;
    },
    async profileStop(args) {
      const { path } = args as { path: string };
      const { profile } = await inspector.post('Profiler.stop');
      writeFileSync(path, JSON.stringify(profile));
      return path;
    },
  };
}
