import type { Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RolloutView } from '../../../gateway/rollouts/view.ts';
import { eventually } from '../../support/operator.ts';
import { type Browser, launchBrowser, PHONE, signIn } from '../support/browser.ts';
import { MARKUP_LABEL } from '../support/rogue.ts';
import { type RolloutSwarm, startRolloutSwarm } from '../support/rollout-swarm.ts';

// The rollouts page in Debian's Chromium against a real gateway and three real agents on swtpm
// with the update machinery: an operator starts a rollout from the page (a refused one first,
// with the gateway's reason), watches the canary and then the rest converge and the barrier come
// to hold without a reload, releases an operation and sees every member's result, and commits
// after confirming. A viewer sees all of it with no button, and the gateway refuses its POSTs.
// Operator- and device-side strings with markup stay text.

interface Ctx {
  swarm?: RolloutSwarm;
  browser?: Browser;
  page?: Page;
  rollout?: string;
}
const it = suite<Ctx>('dashboard in Chromium: rollouts');

const SWARM = 'line=dash';
/** An operation name is any printable token without spaces: markup fits. */
const MARKUP_OPERATION = '<img/src=x/onerror=window.__pwned=1>';

it.before(async (ctx) => {
  ctx.swarm = await startRolloutSwarm(3, SWARM);
  // A label with markup, as a store written by another path could hold: the swarm selector lists it.
  const fleet = ctx.swarm.bed.gw.gateway.fleet;
  const d = fleet.get(ctx.swarm.members[2]!.id)!;
  fleet.save({ ...d, labels: { ...d.labels, note: MARKUP_LABEL } });
  ctx.browser = await launchBrowser();
  ctx.page = await ctx.browser.page();
});
it.after(async (ctx) => {
  await ctx.browser?.close();
  await ctx.swarm?.stop();
});

const mark = (page: Page) => page.evaluate('window.__noReload = true');
const stillSame = async (page: Page) =>
  assert.ok(await page.evaluate("'__noReload' in window"), 'the page was reloaded');
const pwned = (page: Page) => page.evaluate("'__pwned' in window");
/**
 * Records, in the page, every state each member's row in the waves shows, in order, and every
 * reason the operation form gave for being disabled: from the first render on, however fast the
 * rollout goes (three agents on swtpm converge in under a second).
 */
const record = (page: Page) =>
  page.evaluate(`(() => {
    const seen = (window.__seen = { states: {}, blocked: [] });
    const record = () => {
      for (const tr of document.querySelectorAll('table.members tr[data-member]')) {
        const states = (seen.states[tr.dataset.member] ??= []);
        if (states.at(-1) !== tr.dataset.state) states.push(tr.dataset.state);
      }
      const blocked = document.querySelector('[data-blocked]')?.textContent;
      if (blocked && seen.blocked.at(-1) !== blocked) seen.blocked.push(blocked);
    };
    new MutationObserver(record).observe(document.getElementById('app'), {
      subtree: true, childList: true, characterData: true, attributes: true,
    });
  })()`);
interface Seen {
  states: Record<string, string[]>;
  blocked: string[];
}

it('an operator starts a rollout, watches it converge live, operates behind the barrier, commits', async (ctx) => {
  const page = ctx.page!;
  const s = ctx.swarm!;
  const ids = s.members.map((m) => m.id);
  await signIn(page, s.url, s.operatorToken);
  await page.getByRole('link', { name: 'Rollouts' }).click();
  await page.locator('.rollouts-page .empty', { hasText: 'No rollout yet' }).waitFor();
  await mark(page);

  // The swarm selector lists the labels in use, a label with markup as its text.
  const markup = page.locator('select[name="swarm"] option', { hasText: `note=${MARKUP_LABEL}` });
  await markup.waitFor({ state: 'attached' });
  assert.is(await page.locator('#injected, #app script, #app b').count(), 0, 'no element made from a label');
  await page.locator('select[name="swarm"]').selectOption(SWARM);
  await page.locator('select[name="release"]').selectOption('app@2.0.0');

  // Refused by the gateway: its code and message, as it said them.
  await page.getByLabel('Waves (cumulative)').fill('1,abc');
  await page.getByRole('button', { name: 'Start rollout' }).click();
  const refusal = (await page.locator('.rollout-form [role="alert"]').textContent())!;
  assert.match(refusal, /^bad-rollout: "waves": "abc" is neither a count/);

  await page.getByLabel('Waves (cumulative)').fill('1,100%');
  await page.getByLabel('Timeouts (optional)').fill('stage=20s,activate=20s');
  await record(page);
  await page.getByRole('button', { name: 'Start rollout' }).click();
  await page.waitForURL(/#\/rollouts\/r-[0-9a-f]{12}$/);
  const id = page.url().split('/').at(-1)!;
  ctx.rollout = id;

  // The canary, then the rest, to converged; the barrier holds; all without a reload.
  await page
    .locator(`.rollout-page[data-rollout="${id}"][data-phase="completed"]`)
    .waitFor({ timeout: 40_000 });
  await page.locator('.barrier[data-holds="true"]').waitFor();
  const seen = (await page.evaluate('window.__seen')) as Seen;
  assert.equal(Object.keys(seen.states).sort(), ids);
  for (const m of ids) assert.is(seen.states[m]!.at(-1), 'converged', `${m}: ${seen.states[m]}`);
  assert.equal(seen.states[ids[0]!]![0], 'staging', 'the canary staged first');
  for (const m of ids.slice(1)) assert.is(seen.states[m]![0], 'waiting', `${m} waited for the canary`);
  // Until then, no operation: the form said why.
  assert.match(
    seen.blocked[0] ?? '',
    /^Not now: the barrier does not hold: 0 converged and fresh, 3 needed\.$/,
  );
  assert.equal(await page.locator('.wave').evaluateAll((ws) => ws.map((w) => w.getAttribute('data-wave'))), [
    '0',
    '1',
  ]);
  assert.is(await page.locator('.barrier [data-count="converged"]').textContent(), '3');
  const target = page.locator(`table.digest-table tr.target[data-digest="${s.target}"]`);
  assert.is(await target.locator('.group-count').textContent(), '3');
  assert.is(await page.locator('[data-blocked]').count(), 0);
  const release = page.getByRole('button', { name: 'Release operation' });
  assert.not.ok(await release.isDisabled());

  // An operation from the page: each member's result comes in.
  await page.getByLabel('Operation', { exact: true }).fill('recipe');
  await page.getByLabel('Args (JSON object)', { exact: true }).fill('{"recipe": "b"}');
  await release.click();
  assert.match((await page.locator('.operate-form [role="status"]').textContent())!, /released to 3 members/);
  const op = page.locator('article.operation[data-state="done"]');
  await op.waitFor({ timeout: 15_000 });
  assert.is(await op.locator('tr[data-result="done"]').count(), 3);
  await eventually(() => s.members.every((m) => m.operationRuns().length === 1), 'the handler ran on each');
  const view: RolloutView = await s.bed.rollout(id);
  const token = view.operationsDetail[0]!.token;
  assert.match(token, /^[0-9a-f]{100,}$/);
  assert.is(await op.locator('.token-hex').textContent({ timeout: 1000 }), token);

  // An operation named with markup (no device has a handler for it): the name is text, and each
  // member's refusal shows with its code.
  await page.getByLabel('Operation', { exact: true }).fill(MARKUP_OPERATION);
  await release.click();
  const odd = page.locator('article.operation', {
    has: page.locator('.op-name', { hasText: MARKUP_OPERATION }),
  });
  await odd.locator('tr[data-result="failed"]').nth(2).waitFor({ timeout: 15_000 });
  assert.ok((await odd.textContent())!.includes('unsupported'));
  assert.is(await page.locator('#app img').count(), 0);
  assert.is(await pwned(page), false);

  // Destructive actions ask first: backing out of a rollback changes nothing; a commit goes through.
  await page.getByRole('button', { name: 'Roll back' }).click();
  await page.locator('.confirm', { hasText: 'switches back to its previous tree' }).waitFor();
  await page.getByRole('button', { name: 'Keep going' }).click();
  assert.is(await page.locator('.confirm').count(), 0);
  assert.is((await s.bed.rollout(id)).phase, 'completed');
  await page.getByRole('button', { name: 'Commit' }).click();
  await page.getByRole('button', { name: 'Yes, commit' }).click();
  await page.locator('.rollout-page[data-phase="committed"]').waitFor({ timeout: 15_000 });
  assert.is(await page.getByRole('button', { name: 'Release operation' }).isDisabled(), true);
  await stillSame(page);

  // The list, live too.
  await page.getByRole('link', { name: 'Rollouts', exact: true }).first().click();
  await page.locator(`tr[data-rollout="${id}"][data-phase="committed"]`).waitFor();
  await stillSame(page);

  // Both pages, forms included, fit a phone without sideways scrolling.
  const phone = await ctx.browser!.page(PHONE);
  const overflow = () => phone.evaluate('document.documentElement.scrollWidth - window.innerWidth');
  await phone.goto(`${s.url}#/rollouts`);
  await phone.locator(`tr[data-rollout="${id}"]`).waitFor();
  await phone.locator('form.rollout-form').waitFor();
  assert.is(await overflow(), 0, 'rollouts page');
  await phone.goto(`${s.url}#/rollouts/${id}`);
  await phone.locator('form.operate-form').waitFor();
  await phone.locator('article.operation').first().waitFor();
  assert.is(await overflow(), 0, 'rollout page');
  await phone.close();
});

it('a viewer sees the same rollout with no button, and the gateway refuses its POSTs', async (ctx) => {
  const s = ctx.swarm!;
  const id = ctx.rollout!;
  await ctx.browser!.context.clearCookies();
  const page = await ctx.browser!.page();
  try {
    await signIn(page, s.url, s.viewerToken);
    await page.goto(`${s.url}#/rollouts`);
    await page.locator('.viewer-note').waitFor();
    await page.locator(`tr[data-rollout="${id}"][data-phase="committed"]`).waitFor();
    assert.is(await page.locator('main form, main button').count(), 0);
    await page.locator(`tr[data-rollout="${id}"] a`).click();
    await page.locator(`.rollout-page[data-rollout="${id}"]`).waitFor();
    assert.is(await page.locator('table.members tr[data-member]').count(), 3);
    assert.is(await page.locator('article.operation').count(), 2);
    assert.is(await page.locator('article.operation tr[data-result="done"]').count(), 3);
    assert.is(await page.locator('table.digest-table tr.target .group-count').textContent(), '3');
    assert.is(await page.locator('main form, main button').count(), 0);

    const reply = (await page.evaluate(`(async () => {
      const session = await (await fetch('v1/session')).json();
      const post = async (path, body) => {
        const r = await fetch(path, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-vigil-csrf': session.csrf },
          body: JSON.stringify(body),
        });
        return [r.status, (await r.json()).error.code];
      };
      return {
        role: session.role,
        rollback: await post('v1/rollouts/${id}/rollback', {}),
        start: await post('v1/rollouts', { swarm: '${SWARM}', release: 'app@2.0.0', force: true }),
      };
    })()`)) as { role: string; rollback: [number, string]; start: [number, string] };
    assert.is(reply.role, 'viewer');
    assert.equal(reply.rollback, [403, 'forbidden']);
    assert.equal(reply.start, [403, 'forbidden']);
    assert.is((await s.bed.rollout(id)).phase, 'committed');
  } finally {
    await page.close();
  }
});

it('nothing went wrong in the pages but the requests refused on purpose', (ctx) => {
  assert.equal(
    ctx.browser!.problems.filter((p) => !/the server responded with a status of (400|403)/.test(p)),
    [],
  );
});

it.run();
