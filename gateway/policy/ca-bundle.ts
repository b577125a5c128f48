import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

// The EK manufacturer CAs of `admission.ekCa`: a PEM file holding one or more CA certificates
// (TPM vendors publish roots and intermediates; concatenate them). Read when the policy is
// loaded, so a missing or broken bundle rejects the policy instead of failing at the first hello.

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The CA certificates in a PEM file; throws an Error saying what is wrong with the file. */
export function loadCaBundle(path: string): X509Certificate[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error(`${JSON.stringify(path)} holds no PEM certificate`);
  return blocks.map((pem, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (err) {
      throw new Error(
        `certificate ${i + 1} in ${JSON.stringify(path)} does not parse: ${(err as Error).message}`,
      );
    }
    if (!cert.ca) {
      throw new Error(
        `certificate ${i + 1} in ${JSON.stringify(path)} (${cert.subject.replaceAll('\n', ', ')}) is not a CA certificate`,
      );
    }
    return cert;
  });
}
