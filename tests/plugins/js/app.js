// js-dialect: a style stage in JavaScript, as a dialect team would write it.
// It maps instructions that name a Chinese dialect ("用上海话讲", "speak
// Cantonese") to a style with that dialect, and says why when none matches.
//
// Built into a component by componentize-js (build.mjs) against the
// `style-stage` world of wit/stages.wit. How componentize-js maps the WIT:
//   - exports are the module's named exports, in camelCase
//     (`check-config` → `checkConfig`, `map-instruct` → `mapInstruct`);
//   - records are plain objects with camelCase fields (`request-id` →
//     `requestId`, `noise-scale` → `noiseScale`);
//   - `option<T>`: `undefined` (or `null`) is none, anything else is some;
//   - enums are their case names as strings (`'style'`, `'info'`);
//   - variants are `{ tag: 'case-name', val: payload }`;
//   - `result<T, E>`: returning gives `ok(value)`; throwing gives `err`,
//     with the thrown value (or its `payload` property, if it has one) as
//     the error. A thrown `Error` is not an `err`: it traps the call (the
//     host's PluginError::Trap), and without the `stdio` feature its
//     message is lost, so throw `{ tag, val }` for the errors you mean.
//
// Config (the stage's `config` table, as JSON):
//   { "dialects": { "NAME": ["keyword", ...], ... } }
// adds dialects to the built-in table, or replaces the keywords of a
// built-in one. Keywords match anywhere in the instruction, ignoring case.

import { log } from 'voxpipe:stages/log@0.3.0';

const BUILT_IN = {
  shanghainese: { keywords: ['上海话', '沪语', 'Shanghainese'], language: 'zh-CN' },
  cantonese: { keywords: ['粤语', '广东话', 'Cantonese'], language: 'zh-HK' },
};

/** A `stage-error` to throw: componentize-js lowers the thrown value as `err`. */
function stageError(tag, message) {
  return { tag, val: message };
}

/** The dialect table for `config` (a JSON object text), or throws invalid-config. */
function dialectTable(config) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch (e) {
    throw stageError('invalid-config', `config is not JSON: ${e.message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw stageError('invalid-config', 'config must be a JSON object');
  }
  const table = {};
  for (const [name, entry] of Object.entries(BUILT_IN)) {
    table[name] = { keywords: [...entry.keywords], language: entry.language };
  }
  if (!('dialects' in parsed)) {
    return table;
  }
  const dialects = parsed.dialects;
  if (dialects === null || typeof dialects !== 'object' || Array.isArray(dialects)) {
    throw stageError('invalid-config', '`dialects` must be an object of dialect name to keywords');
  }
  for (const [name, keywords] of Object.entries(dialects)) {
    if (name === '' || name.length > 64 || /[\u0000-\u001f\u007f]/.test(name)) {
      throw stageError('invalid-config', `dialect name ${JSON.stringify(name)} must be 1 to 64 characters without control characters`);
    }
    if (!Array.isArray(keywords) || keywords.length === 0
        || !keywords.every((k) => typeof k === 'string' && k !== '')) {
      throw stageError('invalid-config', `\`dialects.${name}\` must be a non-empty list of non-empty strings`);
    }
    table[name] = { keywords, language: table[name]?.language ?? 'zh-CN' };
  }
  return table;
}

export function describe() {
  return {
    name: 'js-dialect',
    version: '0.1.0',
    kind: 'style',
    description: 'Maps instructions naming a Chinese dialect (上海话, 粤语, …) to a style (JavaScript, componentize-js)',
    passes: 'one',
    applies: [],
  };
}

export function checkConfig(config) {
  dialectTable(config);
  // Returning (undefined) is `ok`.
}

export function mapInstruct(ctx, config, instruct) {
  const table = dialectTable(config);
  log('info', `js-dialect: request ${ctx.requestId}, instruction of ${[...instruct].length} chars`);
  const lower = instruct.toLowerCase();
  for (const [dialect, { keywords, language }] of Object.entries(table)) {
    if (keywords.some((k) => lower.includes(k.toLowerCase()))) {
      return {
        tag: 'mapped',
        val: {
          style: {
            // option fields left undefined are `none`.
            language,
            dialect,
            emotions: [],
            extra: [],
          },
          label: `dialect=${dialect}`,
        },
      };
    }
  }
  return { tag: 'unmapped', val: `no dialect matches ${JSON.stringify(instruct)}` };
}
