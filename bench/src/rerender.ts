/** Re-renders results.md and chart.svg from results.json (after a change to the report's layout); a results directory may be given (default bench/results/). */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderChart, renderMarkdown } from './report.js';

const arg = process.argv[2];
const dir = arg === undefined ? new URL('../../results/', import.meta.url).pathname : arg.endsWith('/') ? arg : `${arg}/`;
const { date, machine, results } = JSON.parse(readFileSync(`${dir}results.json`, 'utf8')) as { date: string; machine: string; results: Parameters<typeof renderChart>[0] };
writeFileSync(`${dir}results.md`, renderMarkdown(results, machine, date));
writeFileSync(`${dir}chart.svg`, renderChart(results));
