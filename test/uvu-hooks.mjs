// A module loader hook for the test runner (test/run.mjs). uvu 0.5 runs a suite's `before` hooks
// inside `try { … } finally { return … }`, so an exception there is dropped: the suite reports
// "0 / N" and the run still exits 0. A test that cannot run must fail, so the runner loads uvu
// with a catch added that reports the hook's error as the suite's failure. The patch is matched
// exactly: if uvu changes, this refuses to run rather than silently doing nothing.

const UVU = '/uvu/dist/index.mjs';
const SWALLOWED = "\t} finally {\n\t\tstate.__test__ = '';";
const REPORTED =
  '\t} catch (err) {\n' +
  "\t\tif (errors.length) errors += '\\n';\n" +
  "\t\terrors += format('(a before or before.each hook of this suite)', err, name);\n" +
  '\t\twrite(FAIL);\n' +
  SWALLOWED;

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (!url.endsWith(UVU)) return result;
  const source = String(result.source);
  if (!source.includes(SWALLOWED))
    throw new Error(`test/uvu-hooks.mjs: ${url} is not the uvu this fix was written for; review the fix`);
  return { ...result, source: source.replace(SWALLOWED, REPORTED) };
}
