import type { DeviceConnection } from './device-connection.ts';

// The live device connections, by device. Deciding which connection to ask matters for security:
// anyone can open a connection with a device's id and replay its public hello, so a round or a
// command goes to the connection that attested, never merely to the newest one.

export class Connections {
  readonly #byDevice = new Map<string, DeviceConnection[]>();
  #count = 0;

  add(conn: DeviceConnection): void {
    const list = this.#byDevice.get(conn.deviceId);
    if (list) list.push(conn);
    else this.#byDevice.set(conn.deviceId, [conn]);
    this.#count++;
  }

  remove(conn: DeviceConnection): void {
    const list = this.#byDevice.get(conn.deviceId);
    const i = list?.indexOf(conn) ?? -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.#byDevice.delete(conn.deviceId);
    this.#count--;
  }

  /** A device's live connections, oldest first. */
  of(deviceId: string): readonly DeviceConnection[] {
    return this.#byDevice.get(deviceId) ?? [];
  }

  /** The device's attested connection (the newest, if several attested), if it has one. */
  attestedOf(deviceId: string): DeviceConnection | undefined {
    const list = this.of(deviceId);
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.attested) return list[i];
    return undefined;
  }

  /**
   * The connection to send a round or a command: the attested one while there is one, else the
   * newest past hello (a device that has not attested on any connection yet, or whose attested
   * connection is gone).
   */
  askable(deviceId: string): DeviceConnection | undefined {
    const attested = this.attestedOf(deviceId);
    if (attested) return attested;
    const list = this.of(deviceId);
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.phase === 'attesting') return list[i];
    return undefined;
  }

  *all(): IterableIterator<DeviceConnection> {
    for (const list of this.#byDevice.values()) yield* list;
  }

  get size(): number {
    return this.#count;
  }

  /** Devices with at least one live connection. */
  get devices(): number {
    return this.#byDevice.size;
  }
}
