export { freePort, freePortPair } from '../../firmware-shims/swtpm/free-ports.ts';
