import { agentFigures } from './agent.ts';

console.log(await agentFigures({ rounds: 20, log: console.log }));
