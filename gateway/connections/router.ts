import type { Logger } from 'pino';
import {
  type DeviceMessage,
  decodeFromDevice,
  type ErrorCode,
  ProtocolError,
} from '../../shared/protocol/index.ts';
import type { DeviceConnection, Phase } from './device-connection.ts';

// Every payload a device publishes on its `out` topic comes through here: decoded once, then
// handed to the one feature that registered its message type, if the connection's phase accepts
// it. A feature (rounds, rollouts, ...) registers its own types; nothing else dispatches.

export type DeviceMessageType = DeviceMessage['t'];
type MessageOf<T extends DeviceMessageType> = Extract<DeviceMessage, { t: T }>;

/** Answers `error` on a connection. */
export type Refuse = (conn: DeviceConnection, code: ErrorCode, detail: string, round?: Uint8Array) => void;

interface Route {
  readonly accepts: ReadonlySet<Phase>;
  readonly handle: (conn: DeviceConnection, message: DeviceMessage) => void;
  /** Why a message of this type is refused in `phase`, for the `error` detail. */
  readonly outOfOrder: (phase: Phase) => string;
}

export class MessageRouter {
  readonly #routes = new Map<DeviceMessageType, Route>();

  constructor(
    private readonly refuse: Refuse,
    /** The policy's largest payload, read per message (a reload applies at once). */
    private readonly maxPayload: () => number,
    private readonly log: Logger,
  ) {}

  on<T extends DeviceMessageType>(
    type: T,
    accepts: readonly Phase[],
    handle: (conn: DeviceConnection, message: MessageOf<T>) => void,
    outOfOrder: (phase: Phase) => string,
  ): void {
    if (this.#routes.has(type)) throw new Error(`router: ${type} has a handler already`);
    this.#routes.set(type, {
      accepts: new Set(accepts),
      handle: handle as Route['handle'],
      outOfOrder,
    });
  }

  /** Handles one payload; nothing it does throws into the broker. */
  dispatch(conn: DeviceConnection, payload: Uint8Array): void {
    if (conn.closed) return;
    let message: DeviceMessage;
    try {
      message = decodeFromDevice(payload, { maxPayload: this.maxPayload() });
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.refuse(conn, e.code, e.detail);
      return;
    }
    const route = this.#routes.get(message.t);
    if (!route) {
      this.refuse(conn, 'unexpected-message', `this gateway does not take ${message.t} messages`);
      return;
    }
    if (!route.accepts.has(conn.phase)) {
      this.refuse(conn, 'unexpected-message', route.outOfOrder(conn.phase));
      return;
    }
    try {
      route.handle(conn, message);
    } catch (err) {
      this.log.error(
        { err, device: conn.deviceId, client: conn.clientId, t: message.t },
        'a message handler failed',
      );
    }
  }
}
