import { fleetRound } from './fleet-round.ts';

const sizes = process.argv.slice(2).map(Number);
const prof = process.env.PROF;
const f = await fleetRound({
  sizes,
  rounds: 2,
  shardSize: 2500,
  concurrency: 64,
  log: console.log,
  ...(prof && { profileDir: prof }),
});
console.log(JSON.stringify(f.map((x) => [x.name, x.value])));
