import { signal } from '@preact/signals';

// Pages by the URL's fragment (#/devices/ID, ...): the gateway serves one page, and a reload or a
// shared link lands on the same view.

export type Route =
  | { readonly page: 'fleet' }
  | { readonly page: 'device'; readonly id: string }
  | { readonly page: 'rounds'; readonly batch?: string }
  | { readonly page: 'rollouts'; readonly id?: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'devices' && parts[1]) return { page: 'device', id: parts[1] };
  if (parts[0] === 'rounds') return parts[1] ? { page: 'rounds', batch: parts[1] } : { page: 'rounds' };
  if (parts[0] === 'rollouts') return parts[1] ? { page: 'rollouts', id: parts[1] } : { page: 'rollouts' };
  return { page: 'fleet' };
}

export function href(r: Route): string {
  switch (r.page) {
    case 'fleet':
      return '#/';
    case 'device':
      return `#/devices/${encodeURIComponent(r.id)}`;
    case 'rounds':
      return r.batch ? `#/rounds/${encodeURIComponent(r.batch)}` : '#/rounds';
    case 'rollouts':
      return r.id ? `#/rollouts/${encodeURIComponent(r.id)}` : '#/rollouts';
  }
}

export const route = signal<Route>(parseRoute(location.hash));
window.addEventListener('hashchange', () => {
  route.value = parseRoute(location.hash);
});

export function go(r: Route): void {
  location.hash = href(r);
}
