'use strict';
// Never runs: its package.json names a package that does not exist.

module.exports = { check: () => 'unreachable' };
