/**
 * bernoulli-diffusion/plots — the run's pictures: vega-lite chart specs of the loss, the bound and
 * the sample proportions, rendering them to SVG (vega and vega-lite, optional dependencies,
 * imported on first use), bit-grid images and GIFs, and the HTML report. Browser-safe; on Node
 * the "node" condition adds PNG rendering and whole run directories (src/plots.node.ts).
 *
 * @packageDocumentation
 */
export {
  lossChartSpec,
  proportionsChartSpec,
  chartToSvg,
  evaluationPoints,
  parseMetricsJsonl,
  type MetricRecord,
  type ChartSize,
} from './plots/charts.js';
export {
  bitGridImage,
  samplesOverTrainingGif,
  reverseProcessGif,
  type EvaluationGrid,
  type ReverseFrame,
  type BitGridLayoutOptions,
} from './plots/bitgrid.js';
export { reportHtml, type ReportInputs, type ReportPicture } from './plots/report.js';
