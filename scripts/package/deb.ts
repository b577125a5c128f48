import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

// A binary Debian package from a staged file tree, with dpkg-deb and nothing of debhelper: the
// control file, md5sums, maintainer scripts and the files Debian policy asks of every package
// (copyright, changelog, compressed manual pages) are written here. Ownership is root:root
// (`--root-owner-group`), modes are normalised, and times are clamped to the release's commit
// time so that the same tree gives the same package.

export interface DebPackage {
  readonly name: string;
  readonly version: string;
  /** Debian architecture: `all`, `amd64`, `arm64`, `armhf`. */
  readonly arch: string;
  readonly depends: readonly string[];
  readonly recommends?: readonly string[];
  readonly suggests?: readonly string[];
  readonly section: string;
  readonly synopsis: string;
  /** Paragraphs of the long description. */
  readonly description: readonly string[];
  readonly maintainer: string;
  readonly scripts: Partial<Record<'preinst' | 'postinst' | 'prerm' | 'postrm', string>>;
  /** Unix time for file times and the changelog date. */
  readonly time: number;
}

/** Writes `text` at `root/path` (directories made), with `mode`. */
export function put(root: string, path: string, text: string | Uint8Array, mode = 0o644): void {
  const file = join(root, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  chmodSync(file, mode);
}

/** Compresses as Debian wants documentation and manual pages: gzip -9, no name or time inside. */
export function putGzip(root: string, path: string, text: string | Uint8Array): void {
  put(root, path, gzipSync(text, { level: 9 }));
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(p, ...walk(p));
    else out.push(p);
  }
  return out;
}

/** A changelog entry in Debian's format, for `/usr/share/doc/<pkg>/changelog.gz`. */
function changelog(p: DebPackage): string {
  const date = new Date(p.time * 1000).toUTCString().replace(/GMT$/, '+0000');
  return (
    `${p.name} (${p.version}) unstable; urgency=medium\n\n` +
    `  * Built from the Vigil source tree (npm run package).\n\n` +
    ` -- ${p.maintainer}  ${date}\n`
  );
}

/** Words into lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

function control(p: DebPackage, installedKb: number): string {
  const field = (k: string, v: readonly string[] | undefined) => (v?.length ? `${k}: ${v.join(', ')}\n` : '');
  // Extended description: one leading space per line, paragraphs apart with " .", under 80 columns.
  const long = p.description
    .map((para) =>
      wrap(para, 78)
        .map((l) => ` ${l}`)
        .join('\n'),
    )
    .join('\n .\n');
  return (
    `Package: ${p.name}\nVersion: ${p.version}\nArchitecture: ${p.arch}\nMaintainer: ${p.maintainer}\n` +
    `Installed-Size: ${installedKb}\n${field('Depends', p.depends)}${field('Recommends', p.recommends)}` +
    `${field('Suggests', p.suggests)}Section: ${p.section}\nPriority: optional\n` +
    `Description: ${p.synopsis}\n${long}\n`
  );
}

/**
 * Builds `<out>/<name>_<version>_<arch>.deb` from `root`, a staged tree of what the package
 * installs (it gets DEBIAN/ and the documentation policy requires). Returns the path.
 */
export function buildDeb(p: DebPackage, root: string, copyright: string, out: string): string {
  const doc = `usr/share/doc/${p.name}`;
  put(root, `${doc}/copyright`, copyright);
  putGzip(root, `${doc}/changelog.gz`, changelog(p));

  // Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up, and one per directory.
  let kb = 0;
  const md5: string[] = [];
  chmodSync(root, 0o755);
  for (const path of walk(root).sort()) {
    const st = statSync(path);
    if (st.isDirectory()) {
      chmodSync(path, 0o755);
      kb += 1;
    } else {
      // Scripts are executable, everything else is not (compiled modules included: dlopen needs no x bit).
      const head = readFileSync(path).subarray(0, 2).toString('latin1');
      chmodSync(path, head === '#!' ? 0o755 : 0o644);
      kb += Math.ceil(st.size / 1024);
      md5.push(`${createHash('md5').update(readFileSync(path)).digest('hex')}  ${relative(root, path)}`);
    }
    utimesSync(path, p.time, p.time);
  }
  put(root, 'DEBIAN/control', control(p, kb));
  put(root, 'DEBIAN/md5sums', `${md5.join('\n')}\n`);
  for (const [name, text] of Object.entries(p.scripts)) put(root, `DEBIAN/${name}`, text, 0o755);
  chmodSync(join(root, 'DEBIAN'), 0o755);

  mkdirSync(out, { recursive: true });
  const deb = join(out, `${p.name}_${p.version}_${p.arch}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, deb], {
    env: { ...process.env, SOURCE_DATE_EPOCH: String(p.time) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return deb;
}
