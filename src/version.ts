import * as fs from 'node:fs';
import * as path from 'node:path';

/** From package.json, so there is one place to bump it. */
export const VERSION: string = (
  JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
).version;
