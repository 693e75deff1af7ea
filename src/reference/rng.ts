/** The seeded generators of the package (src/rng.ts): the oracle uses the same ones. */
export * from '../rng.js';
