import type { RedisClient } from './bus.ts';

// Device claims in Redis: `vigil:claim:{device id}` holds the id of the gateway that holds the
// device's attested connection, with an expiry the gateway keeps refreshing while the connection
// lives. A gateway that dies stops refreshing, and its claims lapse: that is how another gateway
// may take its devices over. The thin I/O of ownership.ts's decisions.

const claimKey = (deviceId: string) => `vigil:claim:${deviceId}`;

/**
 * Refreshes the keys holding ARGV[1] and sets those that lapsed (Redis was away longer than the
 * expiry: nobody else could claim them meanwhile); returns the indexes of keys another holds.
 */
const REFRESH = `
local lost = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif holder == false then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, i - 1)
  end
end
return lost`;

/** Deletes the key if it still holds ARGV[1]. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Keys per refresh script call: bounds the time Redis spends in one script. */
const CHUNK = 500;

export class Claims {
  constructor(
    private readonly redis: RedisClient,
    private readonly me: string,
    private readonly ttlMs: number,
  ) {}

  /** The gateway holding the device's claim, or null. */
  async holder(deviceId: string): Promise<string | null> {
    return (await this.redis.get(claimKey(deviceId))) as string | null;
  }

  /** The gateway holding each device's claim, or null, in one round trip. */
  async holders(deviceIds: readonly string[]): Promise<(string | null)[]> {
    if (deviceIds.length === 0) return [];
    return (await this.redis.mGet(deviceIds.map(claimKey))) as (string | null)[];
  }

  /**
   * Claims the device for this gateway, over any other claim (its newest attested connection is
   * here); resolves with the previous holder when it was another gateway.
   */
  async take(deviceId: string): Promise<string | null> {
    const previous = (await this.redis.sendCommand([
      'SET',
      claimKey(deviceId),
      this.me,
      'PX',
      String(this.ttlMs),
      'GET',
    ])) as string | null;
    return previous === this.me ? null : previous;
  }

  /**
   * Extends this gateway's claims, claiming again those that lapsed (after Redis was away, or came
   * back empty); resolves with the devices another gateway claimed meanwhile.
   */
  async refresh(deviceIds: readonly string[]): Promise<string[]> {
    const lost: string[] = [];
    for (let i = 0; i < deviceIds.length; i += CHUNK) {
      const chunk = deviceIds.slice(i, i + CHUNK);
      const idx = (await this.redis.eval(REFRESH, {
        keys: chunk.map(claimKey),
        arguments: [this.me, String(this.ttlMs)],
      })) as number[];
      for (const k of idx) lost.push(chunk[k]!);
    }
    return lost;
  }

  /** Gives the claim up, if it is still ours (the attested connection ended). */
  async release(deviceId: string): Promise<void> {
    await this.redis.eval(RELEASE, { keys: [claimKey(deviceId)], arguments: [this.me] });
  }
}
