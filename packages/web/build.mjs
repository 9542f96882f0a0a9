#!/usr/bin/env node
/**
 * Builds the chat page into dist/public: app.js (src/main.ts and the SDK, bundled by esbuild),
 * style.css, index.html and the icon. index.html points at the bundles with a content hash in the
 * query string, so a browser never runs an old app.js with a new page.
 *
 *   node packages/web/build.mjs            one build (minified, with source maps)
 *   node packages/web/build.mjs --watch    rebuild on change (not minified)
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const out = join(here, 'dist', 'public');
const watch = process.argv.includes('--watch');

/** Writes index.html with cache-busting hashes of the bundles it links. */
async function writeHtml() {
  let html = await readFile(join(src, 'index.html'), 'utf8');
  for (const file of ['app.js', 'style.css', 'icon.svg']) {
    const hash = createHash('sha256').update(await readFile(join(out, file))).digest('hex').slice(0, 10);
    html = html.replaceAll(`"${file}"`, `"${file}?v=${hash}"`);
  }
  await writeFile(join(out, 'index.html'), html);
}

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await copyFile(join(src, 'icon.svg'), join(out, 'icon.svg'));

/** @type {import('esbuild').BuildOptions} */
const options = {
  entryPoints: { app: join(src, 'main.ts'), style: join(src, 'style.css') },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome111', 'firefox114', 'safari16.4'],
  minify: !watch,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [
    {
      name: 'index-html',
      setup(build) {
        build.onEnd(async (result) => {
          if (result.errors.length === 0) await writeHtml();
        });
      },
    },
  ],
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log(`watching ${src} → ${out}`);
} else {
  await esbuild.build(options);
  console.log(`built ${out}`);
}
