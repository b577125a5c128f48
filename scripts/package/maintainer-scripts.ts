// Maintainer scripts for a package that runs one service as its own system user. What debhelper's
// dh_installsystemd and dh_installtmpfiles would generate, written out because the packages are
// built with dpkg-deb alone: the unit is enabled through deb-systemd-helper (so that purging
// removes the links and an administrator's `disable` survives upgrades) and started or restarted
// through deb-systemd-invoke (which honours policy-rc.d), never with systemctl itself. Whether the
// service actually runs is up to the unit: its ConditionPathExists keeps it inert until the
// program has been configured.

export interface ServicePackage {
  readonly unit: string;
  readonly user: string;
  readonly home: string;
  readonly gecos: string;
  /** Existing groups the user joins (e.g. tss for the TPM). */
  readonly groups: readonly string[];
  /** A tmpfiles.d file name the package installs, applied at configure time. */
  readonly tmpfiles?: string;
  /** The package installs udev rules: reloaded at configure time. */
  readonly udevRules?: boolean;
}

const header = (name: string, what: string) => `#!/bin/sh\n# ${name}: ${what}\nset -e\n\n`;

// The actions after which a configured package must have its unit enabled and running.
const CONFIGURED = 'configure|abort-upgrade|abort-deconfigure|abort-remove';

export function maintainerScripts(s: ServicePackage): { postinst: string; prerm: string; postrm: string } {
  const joins = s.groups.map((g) => `\tadduser --quiet ${s.user} ${g}\n`).join('');
  const tmpfiles = s.tmpfiles
    ? `if [ "$1" = configure ] && command -v systemd-tmpfiles >/dev/null; then\n` +
      `\tsystemd-tmpfiles --create ${s.tmpfiles} >/dev/null || true\nfi\n\n`
    : '';
  const udev = s.udevRules
    ? `if [ "$1" = configure ] && command -v udevadm >/dev/null; then\n` +
      `\tudevadm control --reload-rules || true\nfi\n\n`
    : '';
  const postinst =
    header('postinst', `the ${s.user} user, then ${s.unit} enabled (it starts once configured)`) +
    `if [ "$1" = configure ]; then\n` +
    `\tif ! getent passwd ${s.user} >/dev/null; then\n` +
    `\t\tadduser --quiet --system --group --home ${s.home} --no-create-home \\\n` +
    `\t\t\t--gecos '${s.gecos}' ${s.user}\n\tfi\n${joins}` +
    `\t# The program's directory, for \`init\` run as the user before the service ever started.\n` +
    `\tif [ ! -d ${s.home} ]; then\n\t\tinstall -d -o ${s.user} -g ${s.user} -m 0750 ${s.home}\n\tfi\nfi\n\n` +
    tmpfiles +
    udev +
    `case "$1" in\n${CONFIGURED})\n` +
    `\t# Removes only a mask deb-systemd-helper itself left when the package was removed.\n` +
    `\tdeb-systemd-helper unmask ${s.unit} >/dev/null || true\n` +
    `\t# True on a first install: enable. Otherwise keep what the administrator chose.\n` +
    `\tif deb-systemd-helper --quiet was-enabled ${s.unit}; then\n` +
    `\t\tdeb-systemd-helper enable ${s.unit} >/dev/null || true\n\telse\n` +
    `\t\tdeb-systemd-helper update-state ${s.unit} >/dev/null || true\n\tfi\n` +
    `\tif [ -d /run/systemd/system ]; then\n` +
    `\t\tsystemctl --system daemon-reload >/dev/null || true\n` +
    `\t\t# An upgrade restarts on the new code; a first install starts, which the unit's\n` +
    `\t\t# condition turns into a no-op until the program is configured.\n` +
    `\t\tif [ -n "$2" ]; then action=restart; else action=start; fi\n` +
    `\t\tdeb-systemd-invoke "$action" ${s.unit} >/dev/null || true\n\tfi\n\t;;\nesac\n\nexit 0\n`;
  const prerm =
    header('prerm', `stop ${s.unit} before its files go`) +
    `if [ -d /run/systemd/system ] && [ "$1" = remove ]; then\n` +
    `\tdeb-systemd-invoke stop ${s.unit} >/dev/null || true\nfi\n\nexit 0\n`;
  const postrm =
    header('postrm', `forget ${s.unit} on removal, its links on purge (the user and its data stay)`) +
    `if [ -d /run/systemd/system ] && [ "$1" = remove ]; then\n` +
    `\tsystemctl --system daemon-reload >/dev/null || true\nfi\n\n` +
    `if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null; then\n` +
    `\tdeb-systemd-helper mask ${s.unit} >/dev/null || true\nfi\n\n` +
    `if [ "$1" = purge ] && command -v deb-systemd-helper >/dev/null; then\n` +
    `\tdeb-systemd-helper purge ${s.unit} >/dev/null || true\n` +
    `\tdeb-systemd-helper unmask ${s.unit} >/dev/null || true\nfi\n\nexit 0\n`;
  return { postinst, prerm, postrm };
}
