/** Process entry of the `blockcopy` command (bin/blockcopy.js and `npm start` load this). */
import { main } from './main.js';

const code = await main(process.argv.slice(2));
// The simulator or a QMP socket may hold timers or handles: leave once the command is done.
process.exit(code);
