/**
 * bernoulli-diffusion/plots on Node: the browser-safe exports plus PNG rendering (resvg, an
 * optional dependency, loaded on first use) and drawing a whole run directory's pictures.
 *
 * @packageDocumentation
 */
export * from './plots.js';
export {
  renderChartSvg,
  svgToPng,
  renderRunPictures,
  renderRunDirectory,
  type RunPictureInputs,
  type RunPicturesWritten,
  type RenderRunDirectoryOptions,
  type WriteFile,
} from './node/plots.js';
