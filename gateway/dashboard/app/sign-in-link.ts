// A sign-in link (`…/#signin=TOKEN`, as `npm start` prints for its demo): the token is taken from
// the fragment, which never reaches a server or its logs, and the fragment is removed from the
// address bar and the history before anything else reads it. Imported first by main.tsx, so the
// router never sees it.

const PREFIX = '#signin=';

export const linkToken: string | undefined = (() => {
  if (!location.hash.startsWith(PREFIX)) return undefined;
  const token = decodeURIComponent(location.hash.slice(PREFIX.length));
  history.replaceState(null, '', location.pathname + location.search);
  return token || undefined;
})();
