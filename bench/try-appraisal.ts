import { appraisalFigures } from './appraisal.ts';

console.log(await appraisalFigures({ samples: 200, passes: 20 }));
