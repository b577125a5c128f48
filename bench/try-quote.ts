import { quoteFigures } from './quote-compare.ts';

console.log(await quoteFigures({ samples: 20 }));
