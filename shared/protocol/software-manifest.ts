import { createHash } from 'node:crypto';

// The software manifest: a canonical text naming a piece of software, its version and the SHA-256
// of each of its files. Its SHA-256 is what the agent extends into swPcr and what a gateway's
// reference values allow, so the format is fixed byte for byte (docs/agent.md, "Manifest format"):
//
//   vigil-manifest/1\n
//   name <name>\n
//   version <version>\n
//   file <64 lowercase hex SHA-256> <relative path>\n      one per file, sorted by path bytes
//
// Text rather than CBOR or JSON so that `sha256sum manifest.txt` on any machine gives the digest,
// and a release pipeline can produce it with a shell one-liner. It is a contract between the
// device that measures a tree and the gateway that packs and admits releases (PROTOCOL.md §6.1),
// so it lives here; walking a tree takes the file system as an argument (`node:fs` fits it).

export const MANIFEST_MAGIC = 'vigil-manifest/1';

export interface ManifestFile {
  /** Relative to the manifest root, `/`-separated, no `.` or `..` segments. */
  readonly path: string;
  /** Lowercase hex SHA-256 of the file's bytes. */
  readonly sha256: string;
}

export interface Manifest {
  readonly name: string;
  readonly version: string;
  /** Sorted by path (UTF-8 byte order), unique. */
  readonly files: readonly ManifestFile[];
}

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

// Printable ASCII without space: names and versions are single tokens in the text.
const TOKEN = /^[\x21-\x7e]{1,128}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A name or version the manifest can hold: 1 to 128 printable ASCII characters, no spaces. */
export function isManifestToken(v: string): boolean {
  return TOKEN.test(v);
}

function checkToken(what: string, v: string): void {
  if (!isManifestToken(v)) {
    throw new ManifestError(
      `manifest ${what} ${JSON.stringify(v)}: expected 1 to 128 printable ASCII characters, no spaces`,
    );
  }
}

/**
 * A path the manifest can name: relative, `/`-separated, no empty, `.` or `..` segment, no
 * backslash or control character. Release archives hold exactly such paths (PROTOCOL.md §6.1).
 */
export function isManifestPath(p: string): boolean {
  return !(
    p === '' ||
    p.startsWith('/') ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    /[\x00-\x1f\x7f\\]/.test(p) ||
    p.split('/').some((s) => s === '' || s === '.' || s === '..')
  );
}

function checkPath(p: string): void {
  if (!isManifestPath(p)) {
    throw new ManifestError(
      `manifest path ${JSON.stringify(p)}: expected a relative /-separated path without empty, "." or ".." segments, backslashes or control characters`,
    );
  }
}

/** Orders paths by their UTF-8 bytes: the order of manifest lines and of release archives. */
export const byteOrder = (a: string, b: string): number =>
  Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** The canonical text of a manifest; refuses anything that would not parse back identically. */
export function formatManifest(m: Manifest): string {
  checkToken('name', m.name);
  checkToken('version', m.version);
  const files = [...m.files].sort((a, b) => byteOrder(a.path, b.path));
  const lines = [MANIFEST_MAGIC, `name ${m.name}`, `version ${m.version}`];
  let previous: string | undefined;
  for (const f of files) {
    checkPath(f.path);
    if (!SHA256_HEX.test(f.sha256)) {
      throw new ManifestError(
        `manifest file ${f.path}: sha256 ${JSON.stringify(f.sha256)} is not 64 lowercase hex digits`,
      );
    }
    if (f.path === previous) throw new ManifestError(`manifest file ${f.path} is listed twice`);
    previous = f.path;
    lines.push(`file ${f.sha256} ${f.path}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Parses canonical manifest text; anything not exactly canonical is refused with the line named. */
export function parseManifest(text: string): Manifest {
  if (!text.endsWith('\n')) throw new ManifestError('manifest: the last line must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  const at = (i: number) => `manifest line ${i + 1}`;
  if (lines[0] !== MANIFEST_MAGIC) {
    throw new ManifestError(
      `${at(0)}: expected ${JSON.stringify(MANIFEST_MAGIC)}, got ${JSON.stringify(lines[0])}`,
    );
  }
  const header = (i: number, key: string): string => {
    const line = lines[i];
    if (line === undefined || !line.startsWith(`${key} `)) {
      throw new ManifestError(`${at(i)}: expected "${key} <${key}>", got ${JSON.stringify(line)}`);
    }
    return line.slice(key.length + 1);
  };
  const name = header(1, 'name');
  const version = header(2, 'version');
  const files: ManifestFile[] = [];
  for (let i = 3; i < lines.length; i++) {
    const m = /^file ([0-9a-f]{64}) (.+)$/.exec(lines[i]!);
    if (!m)
      throw new ManifestError(
        `${at(i)}: expected "file <sha256 hex> <path>", got ${JSON.stringify(lines[i])}`,
      );
    files.push({ sha256: m[1]!, path: m[2]! });
  }
  const manifest = { name, version, files };
  // Canonical means: formatting what was parsed gives back the very same text.
  if (formatManifest(manifest) !== text) {
    throw new ManifestError('manifest: not canonical (files must be sorted by path bytes and unique)');
  }
  return manifest;
}

/** SHA-256 of the manifest text's UTF-8 bytes: the digest extended into swPcr. */
export function manifestDigest(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text, 'utf8').digest());
}

export interface BuildOptions {
  readonly name: string;
  readonly version: string;
  /** Top-level entries of `root` to cover; all of it when absent. */
  readonly include?: readonly string[];
}

/** The part of a file system a tree walk needs; `node:fs` is one. Paths are `/`-separated. */
export interface TreeFs {
  lstatSync(path: string): { isSymbolicLink(): boolean; isDirectory(): boolean; isFile(): boolean };
  readdirSync(path: string): string[];
  readFileSync(path: string): Uint8Array;
}

const joinPath = (a: string, b: string) =>
  b === '' ? a : a === '' ? b : a.endsWith('/') ? a + b : `${a}/${b}`;

/**
 * Hashes every regular file under `root` (or under `root/<include>`). A symbolic link is refused
 * rather than followed or skipped: it could point measured code at unmeasured bytes.
 */
export function buildManifest(fs: TreeFs, root: string, opts: BuildOptions): Manifest {
  const files: ManifestFile[] = [];
  const walk = (path: string, rel: string) => {
    let st: ReturnType<TreeFs['lstatSync']>;
    try {
      st = fs.lstatSync(path);
    } catch (e) {
      throw new ManifestError(`cannot read ${path} for the software manifest: ${(e as Error).message}`);
    }
    if (st.isSymbolicLink()) {
      throw new ManifestError(
        `${path} is a symbolic link; the software manifest covers regular files only: replace it with the file`,
      );
    }
    if (st.isDirectory()) {
      for (const entry of fs.readdirSync(path)) walk(joinPath(path, entry), joinPath(rel, entry));
    } else if (st.isFile()) {
      files.push({ path: rel, sha256: createHash('sha256').update(fs.readFileSync(path)).digest('hex') });
    }
  };
  for (const top of opts.include ?? ['']) walk(joinPath(root, top), top);
  if (files.length === 0) {
    throw new ManifestError(
      `no files under ${root} (${(opts.include ?? ['.']).join(', ')}) for the software manifest`,
    );
  }
  return { name: opts.name, version: opts.version, files };
}
