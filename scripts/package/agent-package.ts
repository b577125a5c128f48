import * as fs from 'node:fs';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildManifest, formatManifest } from '../../shared/protocol/software-manifest.ts';
import { bundleAgent, writeAgentPackageJson } from './bundle.ts';
import type { Release } from './context.ts';
import { buildDeb, put, putGzip } from './deb.ts';
import { hostArch, shlibDepends } from './gateway-package.ts';
import { maintainerScripts } from './maintainer-scripts.ts';
import {
  checkNativeArch,
  copyPackages,
  type DebianArch,
  dependencyClosure,
  type LockedPackage,
  lockedPackages,
  readLock,
} from './node-modules.ts';
import { copyrightFile } from './notices.ts';

// vigil-agent: what a Pi installs. The agent directory (/usr/lib/vigil-agent) holds the bundle
// and its package.json, and nothing else: the software manifest covers that directory whole.
// Around it: a command on PATH, the systemd unit, the tmpfiles.d entries and udev rule that make
// the kernel's event logs readable to tss, a manual page. The agent's one native module (the
// serial binding, for MCUs on UARTs) is a package of its own per architecture,
// vigil-agent-serial, installed into the same directory: a Pi without MCUs installs no compiled
// code at all, and vigil-agent stays Architecture: all.

export const FILES = join(import.meta.dirname, 'files');
export const AGENT_LIB = 'usr/lib/vigil-agent';
/** Node 18.19: Debian 12's and Raspberry Pi OS bookworm's is 18.20. */
export const AGENT_DEPENDS = ['nodejs (>= 18.19)', 'adduser', 'tpm-udev'] as const;
// Every architecture the prebuilds of a native external are copied for, when the agent has one.
const AGENT_ARCHES: readonly DebianArch[] = ['amd64', 'arm64', 'armhf'];

export interface AgentDir {
  readonly dir: string;
  readonly bundleBytes: number;
  /** Inlined and copied third-party packages. */
  readonly thirdParty: readonly LockedPackage[];
  /** Native packages beside the bundle (none today: then the package is Architecture: all). */
  readonly natives: readonly string[];
}

/**
 * Fills `dir` with the agent (or another `entry`): bundle, package.json, and the native externals
 * for `arches` beside it (none: `arches` empty, for the package that leaves them to another).
 */
export async function stageAgentDir(
  r: Release,
  dir: string,
  arches: readonly DebianArch[] = AGENT_ARCHES,
  entry?: string,
): Promise<AgentDir> {
  const bundle = await bundleAgent(r.root, dir, entry);
  writeAgentPackageJson(dir, r.version);
  const lock = readLock(r.root);
  const copied = arches.length > 0 ? dependencyClosure(lock, bundle.externals) : [];
  copyPackages(r.root, copied, dir, arches);
  checkNativeArch(dir, arches);
  const inlined = lockedPackages(lock, bundle.inlined);
  const byPath = new Map([...inlined, ...copied].map((p) => [p.path, p]));
  return {
    dir,
    bundleBytes: bundle.bytes,
    thirdParty: [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : 1)),
    natives: bundle.externals,
  };
}

export async function buildAgentDeb(r: Release, staging: string, out: string): Promise<string> {
  // No compiled code: an Architecture: all package (the serial binding is vigil-agent-serial).
  const agent = await stageAgentDir(r, join(staging, AGENT_LIB), []);
  // The release's manifest beside the package, for `vigil-gateway release add --manifest FILE`:
  // exactly what the installed agent will measure (its directory, whole).
  const manifest = formatManifest(buildManifest(fs, agent.dir, { name: 'vigil-agent', version: r.version }));
  put(out, `vigil-agent_${r.version}.manifest`, manifest);
  put(staging, 'usr/bin/vigil-agent', readFileSync(join(FILES, 'vigil-agent.sh')), 0o755);
  put(staging, 'lib/systemd/system/vigil-agent.service', readFileSync(join(FILES, 'vigil-agent.service')));
  put(staging, 'usr/lib/tmpfiles.d/vigil-agent.conf', readFileSync(join(FILES, 'vigil-agent.tmpfiles')));
  put(staging, 'lib/udev/rules.d/60-vigil-agent.rules', readFileSync(join(FILES, 'vigil-agent.udev')));
  putGzip(staging, 'usr/share/man/man1/vigil-agent.1.gz', readFileSync(join(FILES, 'vigil-agent.1')));
  for (const doc of ['pi.md', 'agent.md'])
    putGzip(staging, `usr/share/doc/vigil-agent/${doc}.gz`, readFileSync(join(r.root, 'docs', doc)));
  return buildDeb(
    {
      name: 'vigil-agent',
      version: r.version,
      arch: 'all',
      depends: AGENT_DEPENDS,
      recommends: ['tpm2-tools'],
      section: 'admin',
      synopsis: 'Vigil device agent: continuous TPM attestation to an edge gateway',
      description: [
        "The agent proves this device's state to a Vigil gateway with quotes from its TPM 2.0, " +
          'right after every TLS 1.3 handshake and whenever the gateway asks, bound to the TLS ' +
          'channel. It runs as the vigil-agent service, in the tss group, once ' +
          '"vigil-agent init" has provisioned the TPM keys and written /var/lib/vigil-agent/agent.json.',
        "One bundled JavaScript file on the system's Node.js (18.19 or later); nothing is compiled on the device.",
      ],
      maintainer: r.maintainer,
      time: r.time,
      scripts: maintainerScripts({
        unit: 'vigil-agent.service',
        user: 'vigil-agent',
        home: '/var/lib/vigil-agent',
        gecos: 'Vigil device agent',
        groups: ['tss'],
        tmpfiles: 'vigil-agent.conf',
        udevRules: true,
      }),
    },
    staging,
    copyrightFile(r.root, 'vigil-agent', agent.thirdParty),
    out,
  );
}

/**
 * vigil-agent-serial: the agent's native modules (serialport's binding) for this machine's
 * architecture, into the agent's directory. Beside it, the manifest of the agent directory with
 * it installed: what a Pi with serial support measures, a release of its own for the gateway.
 */
export async function buildAgentSerialDeb(r: Release, staging: string, out: string): Promise<string> {
  const arch = hostArch();
  const whole = mkdtempSync(join(tmpdir(), 'vigil-agent-serial-'));
  try {
    const agent = await stageAgentDir(r, whole, [arch]);
    if (agent.natives.length === 0)
      throw new Error('the agent loads no native module: vigil-agent-serial has nothing to hold');
    const modules = join(staging, AGENT_LIB, 'node_modules');
    cpSync(join(whole, 'node_modules'), modules, { recursive: true });
    const manifest = formatManifest(buildManifest(fs, whole, { name: 'vigil-agent', version: r.version }));
    put(out, `vigil-agent_${r.version}+serial_${arch}.manifest`, manifest);
    const natives = new Set(agent.natives);
    const compiled = checkNativeArch(modules, [arch]);
    const copied = agent.thirdParty.filter((p) => existsSync(join(whole, p.path)));
    return buildDeb(
      {
        name: 'vigil-agent-serial',
        version: r.version,
        arch,
        // nodejs: node-gyp-build's scripts name it; libc and the rest: what the module links.
        depends: [`vigil-agent (= ${r.version})`, AGENT_DEPENDS[0], ...shlibDepends(compiled)],
        section: 'admin',
        synopsis: 'Vigil device agent: serial support for microcontroller attesters',
        description: [
          "The compiled serial-port binding the agent uses to ask microcontrollers on this device's " +
            'UARTs for evidence (the "mcus" of agent.json). Without it the agent runs as before and ' +
            `refuses a configuration with MCUs. Holds ${[...natives].join(', ')} for ${arch}.`,
        ],
        maintainer: r.maintainer,
        time: r.time,
        scripts: {},
      },
      staging,
      copyrightFile(r.root, 'vigil-agent-serial', copied),
      out,
    );
  } finally {
    rmSync(whole, { recursive: true, force: true });
  }
}
