import type { ChildProcess } from 'node:child_process';

// Last resort for test equipment run as child processes (socat, the MCU emulator): none may
// outlive the test process, whatever way it ends short of SIGKILL.

const live = new Set<ChildProcess>();
let hooked = false;

export function killOnExit(child: ChildProcess): ChildProcess {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}
