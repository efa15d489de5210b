// What page.js finds on the page: uPlot, loaded by its own <script> tag before it.
import type uPlotType from 'uplot';

declare global {
  const uPlot: typeof uPlotType;
}
