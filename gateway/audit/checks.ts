// The checks a third party runs on an audit export, each written once as shell commands over the
// export's files and standard tools only (bash, coreutils, xxd, openssl, tpm2-tools): the README
// shows them to a person, check.sh runs them. Nothing here runs Vigil's code; the point is that
// the auditor need not trust it.

export interface AuditCheck {
  readonly name: string;
  readonly title: string;
  /** What the check establishes, for the README (a sentence or two). */
  readonly explain: string;
  /** Bash commands run in the export's directory; the check passes when all of them succeed. */
  readonly commands: readonly string[];
}

/** Shell functions the commands use; check.sh defines them, the README prints them once. */
export const HELPERS = String.raw`# extraData = SHA-256("vigil/1" || 0x00 || B || SHA-256(body)), PROTOCOL.md §4
extradata() { { printf 'vigil/1\000'; cat exporter.bin; sha256sum < body.cbor | cut -c1-64 | xxd -r -p; } | sha256sum | cut -c1-64; }
# The qualifying data the TPM signed, as tpm2-tools prints the quote
quoted_extradata() { tpm2_print -t TPMS_ATTEST quote.msg | sed -n 's/^extraData: *//p'; }
# A CBOR byte string (major type 2) holding the file
cbor_bstr() {
  local n; n=$(stat -c %s "$1")
  if [ "$n" -lt 24 ]; then printf "\x$(printf %02x $((0x40 + n)))"
  elif [ "$n" -lt 256 ]; then printf "\x58\x$(printf %02x "$n")"
  else printf "\x59\x$(printf %02x $((n >> 8)))\x$(printf %02x $((n & 255)))"; fi
  cat "$1"
}
# An ES256 signature (r || s, 64 bytes) in the DER form openssl verifies
der_int() {
  local v; v=$(printf %s "$1" | sed 's/^\(00\)*//'); [ -n "$v" ] || v=00
  case $v in [89a-f]*) v=00$v ;; esac
  printf '02%02x%s' $(($(printf %s "$v" | wc -c) / 2)) "$v"
}
p1363_der() {
  local h r s; h=$(xxd -p "$1" | tr -d '\n')
  r=$(der_int "$(printf %s "$h" | cut -c1-64)"); s=$(der_int "$(printf %s "$h" | cut -c65-128)")
  printf '30%02x%s%s' $(($(printf %s "$r$s" | wc -c) / 2)) "$r" "$s" | xxd -r -p
}
b64url_decode() {
  local s; s=$(tr -d '\n')
  case $(($(printf %s "$s" | wc -c) % 4)) in 2) s=$s== ;; 3) s=$s= ;; esac
  printf %s "$s" | basenc --base64url -d
}
# The kid of the EAR key: the first 8 bytes of SHA-256 of its public point (65 bytes, uncompressed)
ear_kid() { openssl pkey -pubin -in ear-key.pem -outform DER | tail -c 65 | sha256sum | cut -c1-16; }`;

export const AUDIT_CHECKS: readonly AuditCheck[] = [
  {
    name: 'binding',
    title: 'The quote is bound to this body and this TLS connection',
    explain:
      "Recompute extraData from exporter.bin (B, the connection's TLS exporter value) and body.cbor; it must equal the qualifying data the TPM signed in quote.msg.",
    commands: [
      'echo "  recomputed extraData: $(extradata)"',
      'echo "  quoted extraData:     $(quoted_extradata)"',
      '[ "$(extradata)" = "$(quoted_extradata)" ]',
    ],
  },
  {
    name: 'quote',
    title: 'The TPM quoted these PCR values, for that extraData, with the AK',
    explain:
      "tpm2_checkquote verifies the AK's signature over quote.msg, that quote.pcrs (the PCR values the body claims) hash to the quoted digest, and that the qualifying data is the extraData recomputed from the body.",
    commands: [
      'tpm2_checkquote -u ak.pem -m quote.msg -s quote.sig -f quote.pcrs -g sha256 -q "$(extradata)" > /dev/null',
    ],
  },
  {
    name: 'nonce',
    title: "The body answers this round's challenge",
    explain: 'body.cbor carries the round\'s nonce under "nonce" (a text key, then a 32-byte string).',
    commands: [
      `xxd -p body.cbor | tr -d '\\n' | grep -q "656e6f6e63655820$(xxd -p nonce.bin | tr -d '\\n')"`,
    ],
  },
  {
    name: 'ear-cwt',
    title: "The EAR the device received is the gateway's, signed",
    explain:
      "ear.protected, ear.payload and ear.sig are the parts of ear.cwt (COSE_Sign1, ES256); its kid names ear-key.pem, and the signature verifies over the COSE Sig_structure. Compare the key with the gateway's EAR key you hold (GET /v1/ear-key).",
    commands: [
      String.raw`{ printf '\x84'; cbor_bstr ear.protected; printf '\xa0'; cbor_bstr ear.payload; cbor_bstr ear.sig; } | cmp -s - ear.cwt`,
      `xxd -p ear.protected | tr -d '\\n' | grep -q "$(ear_kid)"`,
      String.raw`{ printf '\x84\x6aSignature1'; cbor_bstr ear.protected; printf '\x40'; cbor_bstr ear.payload; } > ear.tbs`,
      'p1363_der ear.sig > ear.sig.der',
      'openssl dgst -sha256 -verify ear-key.pem -signature ear.sig.der ear.tbs > /dev/null',
    ],
  },
  {
    name: 'ear-jwt',
    title: 'The same claims as a JWT, signed by the same key',
    explain: 'The JWT (ES256) verifies with ear-key.pem: its signing input is its first two parts.',
    commands: [
      'printf %s "$(cut -d. -f1,2 ear.jwt)" > ear.jwt.input',
      'cut -d. -f3 ear.jwt | b64url_decode > ear.jwt.sig',
      'p1363_der ear.jwt.sig > ear.jwt.sig.der',
      'openssl dgst -sha256 -verify ear-key.pem -signature ear.jwt.sig.der ear.jwt.input > /dev/null',
    ],
  },
  {
    name: 'ear-round',
    title: 'The EAR is about this round',
    explain: "Its eat_nonce is the round's nonce; it states the status the gateway concluded.",
    commands: [
      'cut -d. -f2 ear.jwt | b64url_decode > ear.json',
      `grep -q "\\"eat_nonce\\":\\"$(basenc --base64url -w0 nonce.bin | tr -d '=')\\"" ear.json`,
      'echo "  EAR claims: $(cat ear.json)"',
    ],
  },
];

/** check.sh: every check, PASS or FAIL each, exit 0 only when all pass. */
export function checkScript(checks: readonly AuditCheck[] = AUDIT_CHECKS): string {
  const fns = checks.map((c) => `check_${c.name.replace(/-/g, '_')}() {\n  ${c.commands.join(' &&\n  ')}\n}`);
  const runs = checks.map((c) => `run ${c.name} check_${c.name.replace(/-/g, '_')}`);
  return `#!/usr/bin/env bash
# Re-verifies this audit export with standard tools (bash, coreutils, xxd, openssl, tpm2-tools);
# see README. Exit status 0 only when every check passes.
set -u
cd "$(dirname "$0")" || exit 2
${HELPERS}

${fns.join('\n\n')}

failed=0
run() { if "$2"; then echo "PASS $1"; else echo "FAIL $1"; failed=1; fi; }
${runs.join('\n')}
exit $failed
`;
}
