import type { X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { loadCaBundle } from './ca-bundle.ts';
import { PolicyError } from './json-fields.ts';
import { type Policy, parsePolicyText } from './policy.ts';

// The policy file as the running gateway sees it: loaded at start, reloaded when it changes,
// without a restart. A new version is applied whole or not at all: when it does not parse, or
// its CA bundle cannot be loaded, the previous policy stays in force and the error is reported.
//
// The directory is watched, not the file: editors and config tools replace a file by renaming a
// new one over it, and a watch on the old inode would go quiet after the first save. Events are
// debounced, since one save is often several events (truncate, write, rename).

export interface PolicyFileOptions {
  /** A new policy is in force. */
  readonly onChange?: (policy: Policy, previous: Policy) => void;
  /** A changed file was refused; the previous policy stays in force. */
  readonly onInvalid?: (err: PolicyError) => void;
  /** Watch the file and reload on change (default true); otherwise only `reload()` reloads. */
  readonly watch?: boolean;
  /** Quiet time after the last file event before reloading, ms (default 100). */
  readonly debounceMs?: number;
}

export type ReloadOutcome =
  | { readonly ok: true; readonly changed: boolean }
  | { readonly ok: false; readonly error: PolicyError };

interface Loaded {
  readonly text: string;
  readonly policy: Policy;
  readonly ekCas: readonly X509Certificate[];
}

export class PolicyFile {
  private loaded: Loaded;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** Loads `path`; throws PolicyError when the file is missing or invalid (a gateway must not start on a bad policy). */
  constructor(
    readonly path: string,
    private readonly options: PolicyFileOptions = {},
  ) {
    this.loaded = this.read();
    if (options.watch ?? true) {
      const name = basename(path);
      // persistent: false: the watcher alone never keeps the process alive.
      this.watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.scheduleReload();
      });
      // A watcher error (the directory removed, say) must not crash the gateway: keep the policy.
      this.watcher.on('error', (err) =>
        this.report(new PolicyError(path, '', `watching stopped: ${err.message}`)),
      );
    }
  }

  current(): Policy {
    return this.loaded.policy;
  }

  /** The parsed CA certificates of `admission.ekCa`, empty unless the mode is `ek-ca`. */
  ekCas(): readonly X509Certificate[] {
    return this.loaded.ekCas;
  }

  /**
   * Read the file again now. Unchanged text is not a change. Use after replacing the CA bundle
   * alone: only the policy file itself is watched.
   */
  reload(options: { force?: boolean } = {}): ReloadOutcome {
    let next: Loaded;
    try {
      next = this.read();
    } catch (err) {
      const error = err instanceof PolicyError ? err : new PolicyError(this.path, '', String(err));
      this.report(error);
      return { ok: false, error };
    }
    if (next.text === this.loaded.text && !options.force) return { ok: true, changed: false };
    const previous = this.loaded.policy;
    this.loaded = next;
    this.options.onChange?.(next.policy, previous);
    return { ok: true, changed: true };
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private read(): Loaded {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      throw new PolicyError(
        this.path,
        '',
        `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    const parsed = parsePolicyText(text, this.path);
    // A relative CA path means relative to the policy file, wherever the gateway was started.
    const ekCa =
      parsed.admission.ekCa === undefined ? undefined : resolve(dirname(this.path), parsed.admission.ekCa);
    const policy: Policy =
      ekCa === undefined ? parsed : { ...parsed, admission: { ...parsed.admission, ekCa } };
    let ekCas: X509Certificate[] = [];
    if (policy.admission.mode === 'ek-ca' && ekCa !== undefined) {
      try {
        ekCas = loadCaBundle(ekCa);
      } catch (err) {
        throw new PolicyError(this.path, 'admission.ekCa', (err as Error).message);
      }
    }
    return { text, policy, ekCas };
  }

  private scheduleReload(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      try {
        this.reload();
      } catch (err) {
        // Only a throwing onChange callback gets here; the file watcher has nobody to throw to.
        process.emitWarning(err instanceof Error ? err : new Error(String(err)));
      }
    }, this.options.debounceMs ?? 100);
    this.timer.unref();
  }

  private report(err: PolicyError): void {
    this.options.onInvalid?.(err);
  }
}
