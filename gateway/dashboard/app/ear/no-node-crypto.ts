// What the dashboard's build gives shared/cose/sign1.ts for node:crypto (see ../../build.ts): the
// browser decodes COSE with that module but never signs or verifies with it (@noble/curves does).

function unavailable(name: string): never {
  throw new Error(`node:crypto ${name} is not available in the browser: verify with @noble/curves`);
}

export const createHash = (): never => unavailable('createHash');
export const sign = (): never => unavailable('sign');
export const verify = (): never => unavailable('verify');
