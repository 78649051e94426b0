'use strict';
// Uses a dependency from package.json (is-number 7.0.0).

const isNumber = require('is-number');

function check(event, context) {
  return isNumber(5) && !isNumber('five') ? 'deps ok' : 'is-number misbehaves';
}

module.exports = { check };
