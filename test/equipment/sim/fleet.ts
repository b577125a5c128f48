import type { Result } from '../../../shared/protocol/index.ts';
import type { SimSoftware } from './attester.ts';
import { type ConnectOptions, SimDevice, type SimDeviceOptions } from './sim-device.ts';

// Many SimDevices against one gateway. Connections open with bounded concurrency: a gateway
// handshakes at a finite rate, and ten thousand simultaneous SYNs only measure the listen
// backlog. `ready` resolves when every device has its onboarding result.

export interface SimFleetOptions {
  readonly url: string;
  readonly ca: Buffer | string;
  readonly count: number;
  /** Connections being opened at once (default 64). */
  readonly concurrency?: number;
  /** What every device measures (default: SIM_SOFTWARE). */
  readonly software?: readonly SimSoftware[];
  /** Device i gets seed `${seedPrefix}/${i}`: the same ids on every run. Random keys when absent. */
  readonly seedPrefix?: string;
  /** Per-device options (misbehaviour), by index. */
  readonly device?: (index: number) => SimDeviceOptions;
  readonly connect?: ConnectOptions;
  /** `ready` rejects when not every device has a result by then (default 120 s). */
  readonly readyTimeoutMs?: number;
}

export interface SimFleet {
  readonly devices: readonly SimDevice[];
  /** Every device connected and got the result of its onboarding round. */
  readonly ready: Promise<void>;
  /** Devices whose first result was not affirming (filled as results arrive). */
  readonly refused: { id: string; result: Result }[];
  close(): Promise<void>;
}

export function startSimFleet(opts: SimFleetOptions): SimFleet {
  const concurrency = Math.max(1, opts.concurrency ?? 64);
  const devices: SimDevice[] = [];
  for (let i = 0; i < opts.count; i++) {
    devices.push(
      SimDevice.create({
        ...(opts.software && { software: opts.software }),
        ...(opts.seedPrefix !== undefined && { seed: `${opts.seedPrefix}/${i}` }),
        ...opts.device?.(i),
      }),
    );
  }
  const refused: SimFleet['refused'] = [];
  let closed = false;

  const onboarded = devices.map(
    (d) =>
      new Promise<void>((resolve) => {
        d.once('result', (r) => {
          if (r.status !== 'affirming') refused.push({ id: d.id, result: r });
          resolve();
        });
      }),
  );

  const connectAll = async () => {
    let next = 0;
    const lane = async () => {
      while (!closed && next < devices.length) {
        const d = devices[next++]!;
        await d.connect(opts.url, opts.ca, opts.connect ?? {});
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, devices.length) }, lane));
  };

  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  const ready = Promise.race([
    connectAll().then(() => Promise.all(onboarded)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const missing = devices.filter((d) => d.resultCount === 0).length;
        reject(
          new Error(
            `sim fleet: ${missing} of ${devices.length} devices without a result after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
    }),
  ]).then(
    () => {
      clearTimeout(timer);
    },
    (e: unknown) => {
      clearTimeout(timer);
      throw e;
    },
  );
  // A caller that never awaits ready must not crash the process with an unhandled rejection.
  ready.catch(() => {});

  return {
    devices,
    ready,
    refused,
    async close() {
      closed = true;
      clearTimeout(timer);
      await Promise.all(devices.map((d) => d.close()));
    },
  };
}
