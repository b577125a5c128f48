import type { Socket } from 'node:net';
import type { Client } from 'aedes';
import type { Phase } from '../connections/device-connection.ts';
import type { ConnectionLimits } from '../policy/limits.ts';
import type { BrokerRefusal } from './limits.ts';

// Two bounds on connections that have not proved anything yet, applied from the TCP accept on:
// - a deadline: a connection that has not said `hello` (a device) or authenticated (an operator)
//   within connections.helloTimeoutMs is closed, whether it stalled in the TLS handshake, before
//   CONNECT or after it;
// - per source address, at most connections.unattestedPerAddress connections that have not
//   attested (devices) or authenticated (operators); a new one beyond that is cut at once, before
//   its TLS handshake costs anything. An attested connection never counts, so devices behind
//   one NAT are limited only while they onboard.

/** How far a connection got: an authenticated operator, or its device connection's phase. */
export type Standing = 'operator' | Phase;

interface Entry {
  readonly socket: Socket;
  client?: Client;
  timer?: NodeJS.Timeout;
}

export interface ConnectionGuardHooks {
  limits(): ConnectionLimits;
  /** How far the client of a connection got; undefined before CONNECT was accepted. */
  standing(client: Client): Standing | undefined;
  /** A device connection said no hello within the deadline (counted already): tell it and close it. */
  helloMissing(client: Client, timeoutMs: number): void;
  /**
   * A connection was cut by this guard (counted and logged by the caller, within the budget of
   * `key`: the client, or the address while there is none).
   */
  refused(refusal: BrokerRefusal, address: string, key: object, client?: Client): void;
}

const settled = (s: Standing | undefined) => s === 'operator' || s === 'attested';

export class ConnectionGuard {
  /** Per address, the connections that may still count against its limit. */
  readonly #byAddress = new Map<string, Set<Entry>>();
  /** TLS sockets are matched to their TCP socket by the peer's address and port. */
  readonly #byPeer = new Map<string, Entry>();

  constructor(private readonly hooks: ConnectionGuardHooks) {}

  /** A TCP connection was accepted; cuts it when its address is at its limit, else starts its deadline. */
  accepted(socket: Socket): void {
    const address = socket.remoteAddress ?? 'unknown';
    const limits = this.hooks.limits();
    const pending = this.#byAddress.get(address) ?? new Set<Entry>();
    if (pending.size >= limits.unattestedPerAddress) this.#prune(pending);
    if (pending.size >= limits.unattestedPerAddress) {
      this.hooks.refused(
        {
          reason: 'address-connections',
          why: `${address} has ${pending.size} connections that have not attested, the most connections.unattestedPerAddress allows (${limits.unattestedPerAddress})`,
        },
        address,
        pending,
      );
      socket.destroy();
      return;
    }
    const entry: Entry = { socket };
    pending.add(entry);
    this.#byAddress.set(address, pending);
    const peer = `${address}|${socket.remotePort}`;
    this.#byPeer.set(peer, entry);
    entry.timer = setTimeout(
      () => this.#deadline(entry, address, pending, limits.helloTimeoutMs),
      limits.helloTimeoutMs,
    );
    entry.timer.unref();
    socket.once('close', () => {
      clearTimeout(entry.timer);
      if (this.#byPeer.get(peer) === entry) this.#byPeer.delete(peer);
      pending.delete(entry);
      if (pending.size === 0 && this.#byAddress.get(address) === pending) this.#byAddress.delete(address);
    });
  }

  /** The TLS handshake of a connection completed and aedes took it as `client`. */
  secured(address: string | undefined, port: number | undefined, client: Client): void {
    const entry = this.#byPeer.get(`${address ?? 'unknown'}|${port}`);
    if (entry) entry.client = client;
  }

  /** Connections of `address` that count against its limit now. */
  unattested(address: string): number {
    const pending = this.#byAddress.get(address);
    if (!pending) return 0;
    this.#prune(pending);
    return pending.size;
  }

  /** Drops the connections that no longer count: those that attested or authenticated as operator. */
  #prune(pending: Set<Entry>): void {
    for (const e of pending) {
      if (e.client && settled(this.hooks.standing(e.client))) {
        pending.delete(e);
        clearTimeout(e.timer);
      }
    }
  }

  #deadline(entry: Entry, address: string, pending: object, timeoutMs: number): void {
    const standing = entry.client && this.hooks.standing(entry.client);
    if (standing !== undefined && standing !== 'awaiting-hello') return;
    const hello = standing === 'awaiting-hello';
    this.hooks.refused(
      {
        reason: 'hello-timeout',
        why: `no ${hello ? 'hello' : 'CONNECT'} within ${timeoutMs} ms of connecting (connections.helloTimeoutMs)`,
      },
      address,
      entry.client ?? pending,
      entry.client,
    );
    if (hello && entry.client) this.hooks.helloMissing(entry.client, timeoutMs);
    else entry.socket.destroy();
  }
}
