/** The chart's state path of a copy that runs straight to a confirmed pivot. */
export const PIVOTED_STATES = [
  'validating',
  'preparingDestination',
  'starting',
  'mirroring.running',
  'ready.synced',
  'pivoting',
  'confirmingPivot',
  'finishing',
  // 'settled' is eventless: it routes to the final state within the same step.
  'completed',
] as const;
