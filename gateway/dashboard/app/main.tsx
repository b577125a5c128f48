import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { render } from 'preact';
import { App } from './app.tsx';
import { checkSession } from './session.ts';

// The operator dashboard, served by the gateway (gateway/dashboard/assets.ts).

void checkSession();
render(<App />, document.getElementById('app')!);
