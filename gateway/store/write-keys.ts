// The write queue's keys, the same for both engines: a save replaces a queued one with the same
// key (the newer record wins before either is committed), and a keyed lookup reads a record that
// is still queued, so a query sees every write made before it.

export const writeKey = {
  device: (id: string) => `device ${id}`,
  round: (id: string) => `round ${id}`,
  batch: (id: string) => `batch ${id}`,
  allowlist: (entry: string) => `allowlist ${entry}`,
  release: (name: string, version: string) => `release ${JSON.stringify([name, version])}`,
  mcu: (identity: string) => `mcu ${identity}`,
  rollout: (id: string) => `rollout ${id}`,
  swarmFloor: (swarm: string, name: string) => `swarm floor ${JSON.stringify([swarm, name])}`,
} as const;
