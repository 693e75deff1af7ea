/**
 * The run, in one room: what a checkpoint holds and how it loads (metadata keys, model state,
 * tensor names, run config, loop state), the run's data, the mapping from its config to the
 * training loop's settings, and the records a run writes (src/run/records.ts).
 */
export * from './checkpoint.js';
export * from './data.js';
export * from './load.js';
export * from './records.js';
export * from './settings.js';
