export * from './binding.ts';
export { decodeClaims, encodeClaims } from './claims.ts';
export * from './codes.ts';
export {
  type AttestationDeviceMessage,
  type AttestationGatewayMessage,
  DEFAULT_MAX_PAYLOAD,
  type DecodeOptions,
  decodeDeviceMessage,
  decodeFromDevice,
  decodeFromGateway,
  decodeGatewayMessage,
  decodeMessage,
  encodeMessage,
  PROTOCOL_VERSION,
} from './envelope.ts';
export * from './errors.ts';
export * from './identity.ts';
export * from './messages.ts';
export * from './topics.ts';
