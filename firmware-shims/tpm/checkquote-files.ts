import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CheckquoteInput,
  checkquoteArgs,
  encodeCheckquoteFiles,
} from '../../shared/tpm/checkquote-files.ts';

// The formats are shared/tpm/checkquote-files.ts (the gateway's audit export writes them too);
// this is the agent side's writer.

/** Writes the files into `dir` and returns the tpm2_checkquote arguments that verify them. */
export async function writeCheckquoteFiles(dir: string, q: CheckquoteInput): Promise<string[]> {
  const files = encodeCheckquoteFiles(q);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return checkquoteArgs(dir, q.qualifyingData);
}
