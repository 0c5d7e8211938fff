// A CommonJS consumer: Node >= 20.19 loads the ESM-only package through require(esm).
/* eslint-disable @typescript-eslint/no-require-imports -- require() is what this file tests */
const blockcopy = require('blockcopy');
const sim = require('blockcopy/adapters/sim');

const engine = blockcopy.createEngine({ hypervisor: new sim.SimulatedHypervisor() });
engine.planRebase('demo', 'vda', '/var/lib/blockcopy/copy.qcow2', 0, blockcopy.RebaseFlags.COPY).then((plan) => {
  engine.close();
  console.log(JSON.stringify(plan.isOk() ? { source: plan.value.source, action: plan.value.destinationAction } : null));
});
