/**
 * bernoulli-diffusion/cli on Node: the browser-safe exports plus `main`, which runs one command
 * line with real files and a terminal (what the `bernoulli-diffusion` command does).
 *
 * @packageDocumentation
 */
export * from './cli.js';
export { main } from './node/cli.js';
