/** The shared job-store table on the in-memory store. */
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { jobStoreSuite } from './suite.js';

jobStoreSuite('memory', () => new MemoryJobStore());
