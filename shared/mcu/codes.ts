// The gateway's result codes for one MCU sub-attester, in appraisal order: the first failing
// check decides. Stable strings, shown to operators and carried in the EAR's `vigil.codes`.
export const MCU_RESULT_CODES = [
  'mcu-absent',
  'mcu-malformed',
  'mcu-identity-unknown',
  'mcu-signature-invalid',
  'mcu-binding-mismatch',
  'mcu-firmware-changed',
] as const;
export type McuResultCode = (typeof MCU_RESULT_CODES)[number];
