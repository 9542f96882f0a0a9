export { Hub } from './hub.js';
export { ClientError } from './errors.js';
