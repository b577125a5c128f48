import { linkToken } from './sign-in-link.ts';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { render } from 'preact';
import { App } from './app.tsx';
import { checkSession, signIn } from './session.ts';

// The operator dashboard, served by the gateway (gateway/dashboard/assets.ts).

void (linkToken === undefined ? checkSession() : signIn(linkToken));
render(<App />, document.getElementById('app')!);
