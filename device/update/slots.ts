import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { syncDirectory } from '../atomic-file.ts';
import { SLOT_NAMES, type SlotName } from './state.ts';

// Two slots for the measured software, `ROOT/a` and `ROOT/b`, and `ROOT/current`, a relative
// symbolic link to the one that runs (the service runs `ROOT/current/...`). Switching writes a new
// link beside the old and renames it over `current`: rename(2) replaces the name atomically, so a
// reader (or a power cut) sees the old link or the new, never none; fsync of ROOT makes it last.
//
// Why a link and not A/B partitions: the software is a userland tree, not the OS image; a
// partition switch (RAUC, the Pi's tryboot) needs a reboot and the boot loader for what one
// rename does on the SD card's ext4, with the same all-or-nothing property. Renaming the tree
// directories themselves would take two renames, with a moment where neither name is `current`.
//
// A release is unpacked aside into `ROOT/.incoming` and moved into its slot only once its tree
// measured right; the slot `current` names is never written to.

export const CURRENT_LINK = 'current';
const INCOMING = '.incoming';

export class SlotError extends Error {
  override readonly name = 'SlotError';
}

export class Slots {
  constructor(readonly root: string) {}

  path(slot: SlotName): string {
    return join(this.root, slot);
  }

  /** Where a release is unpacked before it replaces a slot. */
  get incoming(): string {
    return join(this.root, INCOMING);
  }

  /** The slot `current` points to; a SlotError saying what to do when the link is missing or odd. */
  current(): SlotName {
    const link = join(this.root, CURRENT_LINK);
    let target: string;
    try {
      target = readlinkSync(link);
    } catch (e) {
      throw new SlotError(
        `${link} is not a symbolic link to a slot (${(e as NodeJS.ErrnoException).code}): install the tree in ${this.path('a')} and run \`ln -s a ${link}\``,
      );
    }
    const slot = SLOT_NAMES.find((s) => s === target || target === `./${s}`);
    if (slot === undefined)
      throw new SlotError(`${link} points to ${JSON.stringify(target)}; it must point to a or b (relative)`);
    return slot;
  }

  /** Points `current` to `slot` atomically and durably. */
  switchTo(slot: SlotName): void {
    if (!lstatSync(this.path(slot), { throwIfNoEntry: false })?.isDirectory())
      throw new SlotError(`slot ${this.path(slot)} holds no tree: refusing to point ${CURRENT_LINK} at it`);
    const tmp = join(this.root, `.${CURRENT_LINK}-${randomBytes(4).toString('hex')}`);
    symlinkSync(slot, tmp);
    try {
      renameSync(tmp, join(this.root, CURRENT_LINK));
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    syncDirectory(this.root);
  }

  clear(slot: SlotName): void {
    if (slot === this.current()) throw new SlotError(`slot ${slot} is current: it is never cleared`);
    rmSync(this.path(slot), { recursive: true, force: true });
    syncDirectory(this.root);
  }

  discardIncoming(): void {
    rmSync(this.incoming, { recursive: true, force: true });
  }

  /**
   * Moves the unpacked tree into `slot`, replacing what it held; a no-op when nothing is unpacked
   * (it was moved before a restart), so that recovery may call it again.
   */
  placeIncoming(slot: SlotName): void {
    if (!lstatSync(this.incoming, { throwIfNoEntry: false })?.isDirectory()) return;
    if (slot === this.current())
      throw new SlotError(`slot ${slot} is current: a release never overwrites it`);
    rmSync(this.path(slot), { recursive: true, force: true });
    renameSync(this.incoming, this.path(slot));
    syncDirectory(this.root);
  }
}

/**
 * Provisioning: makes `root` a slot root whose slot `a` is the tree at `tree` (moved, not copied)
 * and `current` points to it. For image builds and tests; a device does this once.
 */
export function adoptTree(root: string, tree: string): Slots {
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const slots = new Slots(root);
  renameSync(tree, slots.path('a'));
  symlinkSync('a', join(root, CURRENT_LINK));
  syncDirectory(root);
  return slots;
}
