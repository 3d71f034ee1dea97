/** Embedded at build time from package.json (scripts/build-info.js), so there is one place to bump it. */
export { VERSION } from './generated/build-info';
