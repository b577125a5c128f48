import { readFileSync } from 'node:fs';

// Reading a JSON file the agent owns: absent is a normal case (undefined), anything else that
// goes wrong is an error of the caller's kind naming the file and what to do.

export function readJsonFile(
  file: string,
  fail: new (message: string) => Error,
  hint = 'fix it or restore it from a backup',
): unknown | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new fail(`${file} cannot be read (${(e as Error).message}): check its permissions`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new fail(`${file} is not valid JSON (${(e as Error).message}): ${hint}`);
  }
}
