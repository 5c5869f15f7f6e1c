// Builds app.js into a `style-stage` component with componentize-js.
//
//   node build.mjs OUT.wasm
//
// Uses the componentize-js API, not a CLI, with the WIT folder resolved from
// this script (../../../wit), so it runs from any working directory.
// Needs `npm ci` here first, and Node.js ^20.19 or >= 22.12 (see below).
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out || process.argv.length > 3) {
  console.error('usage: node build.mjs OUT.wasm');
  process.exit(2);
}

// componentize-js and jco load native bindings (oxc-parser, oxc-minify,
// rolldown) that declare node ^20.19 || >= 22.12; on an older node, npm
// skips them at install and the import below fails with "Cannot find
// native binding". Say so plainly instead.
const [major, minor] = process.versions.node.split('.').map(Number);
if (!((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22)) {
  console.error(
    `build.mjs: Node.js ${process.versions.node} is too old for componentize-js ` +
      '(needs ^20.19 or >= 22.12; Debian 12 ships 18.20.4)',
  );
  process.exit(1);
}

const wit = resolve(here, '../../../wit');

// componentize-js reads the WIT from inside its own Wasm (the splicer), run
// by jco's preview2-shim, which it imports without declaring it. Up to shim
// 0.26.0 the guest saw the whole host filesystem as `/`; 0.26.1 preopens
// nothing, and the splicer fails with "reading file …/wit: No such file or
// directory". So package.json pins the shim and this script preopens just
// the WIT folder, under its own absolute path.
const { _setPreopens } = await import('@bytecodealliance/preview2-shim/filesystem');
_setPreopens({ [wit]: wit });

const { componentize, version } = await import('@bytecodealliance/componentize-js');

// componentize-js maps the source's folder into wizer relative to the
// working directory, and gets it wrong when that is `/` (it cuts "app.js"'s
// path to "mp/…"): work from this folder, whatever the caller's.
const outPath = resolve(out);
process.chdir(here);

const started = performance.now();
const { component } = await componentize({
  sourcePath: resolve(here, 'app.js'),
  witPath: wit,
  worldName: 'style-stage',
  // The plugin needs none of the engine's WASI-backed features (console,
  // Math.random/crypto, Date.now/performance.now, fetch, an HTTP handler):
  // without them the component imports no WASI at all, only the log import.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await mkdir(dirname(outPath), { recursive: true });
await writeFile(outPath, component);
const ms = Math.round(performance.now() - started);
console.error(
  `js-dialect: componentize-js ${version} wrote ${out} (${component.length} bytes) in ${ms} ms`,
);
