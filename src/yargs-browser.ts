/**
 * yargs for browsers, offline. yargs' own browser build (`yargs/browser`) imports its two helpers,
 * cliui and yargs-parser, from unpkg.com at run time. The package build (scripts/bundle-yargs-browser.mjs)
 * replaces this module's compiled form in dist/ with a bundle of `yargs/browser` whose two CDN
 * imports point at the copies installed with yargs, so an app needs no CDN and no bundler alias.
 */
import yargs from 'yargs/browser';
import type { YargsFactory } from './commands/index.js';

/** A yargs factory that runs in browsers and Web Workers without network access; pass it to `runCli`. */
export const browserYargs: YargsFactory = yargs as unknown as YargsFactory;
